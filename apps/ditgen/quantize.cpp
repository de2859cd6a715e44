// `ditgen quantize`: write a copy of a model file with its attention and MLP projections quantized
// (docs/QUANT.md): weights at 8 or 4 bits per output channel, activations dynamic int8 or float.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "commands.h"
#include "ditgen/core/device.h"
#include "ditgen/io/tensor_io.h"
#include "ditgen/models/model_file.h"
#include "ditgen/pipeline/calibration.h"
#include "ditgen/pipeline/outputs.h"

namespace ditgen::cli {

namespace {

struct QuantizeOptions {
  std::string model, output, activations = "dynamic", device = "cpu";
  int weight_bits = 8;
  bool symmetric = false;
  CalibrationOptions calibration;
};

// The dtype of a model file's float tensors (the first one's), which the quantized copy keeps for the layers
// that stay float: a bf16 model stays bf16 there.
at::ScalarType stored_float_dtype(const std::string& path) {
  const io::SafetensorsFile file = io::SafetensorsFile::open(path, ErrorKind::Model);
  for (const io::TensorView& view : file.tensors())
    if (io::is_weight_float(view.dtype))
      return io::to_scalar_type(view.dtype);
  return at::kFloat;
}

int run_quantize(const QuantizeOptions& o) {
  if (o.weight_bits != 4 && o.weight_bits != 8)
    throw Error(ErrorKind::Usage, "--weights must be 8 or 4, not " + std::to_string(o.weight_bits));
  const quant::ActivationMode activations = quant::parse_activation_mode(o.activations, ErrorKind::Usage);
  require_extension(o.output, ".safetensors", "-o");
  check_model_path(o.model);
  check_run_files({{o.output, "-o"}}, {{o.model, "the model"}});
  if (o.calibration.images < 1) throw Error(ErrorKind::Usage, "--calibration must be at least 1");
  const at::Device device = parse_device(o.device);
  LoadedModel loaded = load_model(o.model, at::Device(at::kCPU), at::kFloat);
  if (loaded.info.quantization.quantized())
    throw Error(ErrorKind::Usage, o.model + " is already quantized (" + loaded.info.quantization.label() +
                                      "): quantize the float model");
  const quant::Symmetry symmetry = o.symmetric ? quant::Symmetry::Symmetric : quant::Symmetry::Asymmetric;
  loaded.info.quantization = quant::quantize_model(loaded.model, o.weight_bits, symmetry, activations);
  if (activations == quant::ActivationMode::StaticPerTensor) {
    std::fprintf(stderr, "calibrating static activations on %d generated images (%s, %d steps)...\n",
                 o.calibration.images, loaded.info.sampler_defaults.sampler.c_str(), loaded.info.sampler_defaults.steps);
    calibrate_static_activations(loaded, o.calibration, device);
    loaded.model->to(at::kCPU);
  }
  save_model(o.output, loaded.model, loaded.info, stored_float_dtype(o.model));
  const quant::ModelQuantization& q = loaded.info.quantization;
  std::printf("%s: %s, %zu layers quantized; %.2f MB -> %.2f MB\n", o.output.c_str(), q.label().c_str(),
              q.layers.size(), std::filesystem::file_size(o.model) / 1e6, std::filesystem::file_size(o.output) / 1e6);
  return 0;
}

}  // namespace

Command add_quantize_command(CLI::App& root) {
  auto o = std::make_shared<QuantizeOptions>();
  CLI::App* app = root.add_subcommand(
      "quantize", "Write a quantized copy of a model file: every attention and MLP projection of the blocks "
                  "(DiffuSSM: its hourglass's dense layers) gets integer weights (per output channel, MSE clip search); embeddings, adaLN, the text encoder and "
                  "the final layer stay float (in the input's dtype). Quantized models run on the CPU in fp32 and on CUDA in "
                  "fp32, bf16 or fp16 (integer kernels; see docs/QUANT.md)");
  app->add_option("model", o->model, "Float model file (.safetensors)")->required();
  app->add_option("-o,--output", o->output, "Quantized model file to write (.safetensors; an existing file is "
                                            "replaced, the input never)")
      ->required();
  app->add_option("--weights", o->weight_bits, "Weight bits: 8 or 4 (4-bit weights are stored two a byte)")
      ->capture_default_str();
  app->add_option("--acts", o->activations,
                  "Activations: dynamic (int8 per token at every forward, the integer GEMM), static (int8 with one "
                  "scale and zero point per layer, calibrated on the model's own samples) or none (float "
                  "activations times the dequantized weights)")
      ->capture_default_str();
  app->add_option("--calibration", o->calibration.images,
                  "With --acts static: images generated to calibrate on (the model's sampler defaults; every step "
                  "is observed)")
      ->capture_default_str();
  app->add_option("--calibration-seed", o->calibration.seed, "With --acts static: the first calibration image's seed")
      ->capture_default_str();
  app->add_option("--device", o->device, "Where the calibration runs: cpu, cuda or auto")->capture_default_str();
  app->add_flag("--symmetric", o->symmetric, "Symmetric weights (zero point 0) instead of asymmetric");
  return {app, [o] { return run_quantize(*o); }};
}

}  // namespace ditgen::cli
