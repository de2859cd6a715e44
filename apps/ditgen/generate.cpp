// `ditgen generate`: prompts in, PNG images (and optionally latents and a trajectory video) out.
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "commands.h"
#include "ditgen/core/log.h"
#include "ditgen/io/atomic_file.h"
#include "ditgen/io/tensor_io.h"
#include "ditgen/io/video.h"
#include "ditgen/pipeline/generator.h"
#include "ditgen/pipeline/outputs.h"
#include "progress.h"

namespace ditgen::cli {

namespace {

struct GenerateOptions {
  std::vector<std::string> prompts;
  std::string model;
  std::string output = "{prompt}-{seed}.png";
  std::optional<uint64_t> seed;
  std::optional<int> steps;
  std::optional<std::string> sampler;
  std::optional<double> cfg_scale;
  std::optional<int> cfg_channels;
  double eta = 0.0;
  int num_images = 1;
  int batch_size = 16;
  int width = 0, height = 0;
  std::string device = "auto";
  std::string dtype = "auto";
  std::string progress = "auto";
  std::string init_noise, save_latents, save_trajectory;
};

at::Tensor read_init_noise(const std::string& path) {
  auto tensors = io::load_tensors(path, ErrorKind::Input);
  if (auto it = tensors.find("noise"); it != tensors.end()) return it->second;
  if (tensors.size() == 1) return tensors.begin()->second;
  throw Error(ErrorKind::Input, path + ": expected a tensor named 'noise' [N, C, H, W]");
}

// Fails before any compute when an output folder cannot be created or written.
void check_writable(const std::filesystem::path& file) {
  const std::filesystem::path dir = file.parent_path().empty() ? "." : file.parent_path();
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error(ErrorKind::Output, "cannot create folder " + dir.string() + ": " + ec.message());
  io::AtomicFile probe(file);  // removed again on destruction
}

void write_trajectory(const std::string& path, const at::Tensor& trajectory, int columns) {
  const int64_t T = trajectory.size(0);
  io::Image first = tile_images(trajectory[0], columns);
  io::VideoOptions options;
  options.scale = std::max(1, 256 / std::max(first.width, 1));
  io::VideoWriter video(path, first.width, first.height, first.channels, options);
  for (int64_t t = 0; t < T; ++t) video.add_frame(tile_images(trajectory[t], columns).pixels.data());
  video.finish();
}

int run_generate(const GenerateOptions& o) {
  if (o.prompts.empty()) throw Error(ErrorKind::Usage, "no prompt given (e.g. ditgen generate -m MODEL sneaker)");
  if (o.num_images < 1) throw Error(ErrorKind::Usage, "--num-images must be >= 1");
  if (o.batch_size < 1) throw Error(ErrorKind::Usage, "--batch-size must be >= 1");
  if (o.steps && *o.steps < 1) throw Error(ErrorKind::Usage, "--steps must be >= 1, got " + std::to_string(*o.steps));
  if (!o.save_trajectory.empty() && !io::video_supported())
    throw Error(ErrorKind::Usage, "--save-trajectory needs video support, which this build lacks (no FFmpeg)");
  const ProgressMode progress_mode = parse_progress_mode(o.progress);
  const at::Device device = parse_device(o.device);
  const at::ScalarType dtype = o.dtype == "auto" ? (device.is_cuda() ? at::kBFloat16 : at::kFloat) : parse_dtype(o.dtype);
  const std::string model = o.model.empty() ? default_model_path() : o.model;
  if (!std::filesystem::exists(model)) throw Error(ErrorKind::Model, "model file not found: " + model);

  Generator generator(model, device, dtype);
  const ModelInfo& info = generator.info();
  log::debug(c10::str("model ", info.name, " (", info.path.string(), "), device ", device.str(), ", dtype ",
                      dtype_label(dtype)));

  GenerationRequest request;
  const uint64_t seed = o.seed ? *o.seed : std::random_device{}() & 0xffffffffu;
  std::vector<std::string> image_prompts;
  for (const auto& prompt : o.prompts) {
    const int64_t label = info.resolve_class(prompt);
    for (int k = 0; k < o.num_images; ++k) {
      request.seeds.push_back(seed + request.labels.size());
      request.labels.push_back(label);
      image_prompts.push_back(info.class_label(label));
    }
  }
  const SamplerDefaults& d = info.sampler_defaults;
  request.sampler = {o.sampler.value_or(d.sampler), o.steps.value_or(d.steps), o.eta};
  request.guidance = {o.cfg_scale.value_or(d.cfg_scale), o.cfg_channels.value_or(d.cfg_channels)};
  request.width = o.width;
  request.height = o.height;
  request.batch_size = o.batch_size;
  request.keep_trajectory = !o.save_trajectory.empty();
  generator.validate(request);  // every usage error before any file is read or written
  if (!o.init_noise.empty()) {
    request.init_noise = read_init_noise(o.init_noise);
    generator.validate(request);
  }

  const bool images = info.config.in_channels == 1 || info.config.in_channels == 3;
  if (!images && o.save_latents.empty())
    throw Error(ErrorKind::Usage, "this model makes " + std::to_string(info.config.in_channels) +
                                      "-channel latents that ditgen cannot decode yet; pass --save-latents FILE");
  if (!images && !o.save_trajectory.empty())
    throw Error(ErrorKind::Usage, "--save-trajectory needs a pixel-space model (1 or 3 channels)");
  std::vector<std::filesystem::path> paths;
  if (images) {
    const bool several = request.labels.size() > 1;
    for (size_t i = 0; i < request.labels.size(); ++i)
      paths.push_back(expand_output_name(o.output, {static_cast<int64_t>(i), request.seeds[i], image_prompts[i],
                                                    request.labels[i]}, several));
    std::set<std::filesystem::path> folders_checked;
    for (const auto& p : paths)
      if (folders_checked.insert(p.parent_path()).second) check_writable(p);
  }
  for (const std::string& extra : {o.save_latents, o.save_trajectory})
    if (!extra.empty()) check_writable(extra);

  const double gflops = generator.gflops_per_image(request);
  log::debug(c10::str(request.labels.size(), " image(s), ", request.sampler.name, " ", request.sampler.steps,
                      " steps, cfg ", request.guidance.scale, ": ", gflops, " GFLOPs per image (",
                      dit_gflops(info.config, request.height ? request.height : info.config.input_height,
                                 request.width ? request.width : info.config.input_width),
                      " per forward)"));
  ProgressDisplay display(progress_mode);
  GenerationResult result = generator.generate(request, [&](const Progress& p) { display.update(p); });
  display.finish();

  for (size_t i = 0; i < paths.size(); ++i) {
    auto record = generation_record(info, request, i, image_prompts[i], device.str(), gflops);
    io::write_png(paths[i], to_image(result.frames[i][0]), png_metadata(record));
    std::printf("%s\n", paths[i].string().c_str());
  }
  if (!o.save_latents.empty()) {
    io::save_tensors(o.save_latents, {{"latents", result.frames.select(1, 0)}},
                     {{"ditgen.record", generation_record(info, request, 0, image_prompts[0], device.str(), gflops).dump()}});
    std::printf("%s\n", o.save_latents.c_str());
  }
  if (!o.save_trajectory.empty()) {
    write_trajectory(o.save_trajectory, result.trajectory, 8);
    std::printf("%s\n", o.save_trajectory.c_str());
  }
  return 0;
}

}  // namespace

Command add_generate_command(CLI::App& root) {
  auto o = std::make_shared<GenerateOptions>();
  CLI::App* app = root.add_subcommand("generate", "Generate images from prompts (class names or ids)");
  app->add_option("prompts", o->prompts, "Prompts: class names (case-insensitive) or class ids");
  app->add_option("-p,--prompt", o->prompts, "A prompt (repeatable; same as a positional prompt)");
  app->add_option("-m,--model", o->model, "Model file (.safetensors); default: the shipped Fashion-MNIST model")
      ->envname("DITGEN_MODEL");
  app->add_option("-o,--output", o->output,
                  "Output name template; fields {index} {index:N} {seed} {prompt} {class}")
      ->capture_default_str();
  app->add_option("-s,--seed", o->seed, "Seed of the first image; image i uses seed + i (default: random)");
  app->add_option("-n,--num-images", o->num_images, "Images per prompt")->capture_default_str();
  app->add_option("--steps", o->steps, "Sampling steps (default: the model's)");
  app->add_option("--sampler", o->sampler, "ddim or ddpm (diffusion models), euler (flow models); default: the model's");
  app->add_option("--eta", o->eta, "DDIM stochasticity (0 = deterministic)")->capture_default_str();
  app->add_option("--cfg-scale", o->cfg_scale, "Classifier-free guidance scale; 1 = off (default: the model's)");
  app->add_option("--cfg-channels", o->cfg_channels,
                  "Guide only the first N channels (3 = the official DiT's variant); 0 = all (default: the model's)");
  app->add_option("--width", o->width, "Width in model units (pixels or latents); default: the model's");
  app->add_option("--height", o->height, "Height in model units; default: the model's");
  app->add_option("--batch-size", o->batch_size, "Images per forward pass")->capture_default_str();
  app->add_option("--device", o->device, "auto, cpu, cuda or cuda:N")->capture_default_str()->envname("DITGEN_DEVICE");
  app->add_option("--dtype", o->dtype, "auto (bf16 on CUDA, fp32 on CPU), fp32, bf16 or fp16")->capture_default_str();
  app->add_option("--progress", o->progress, "auto (a bar on a terminal), bar, json or none")->capture_default_str();
  app->add_option("--init-noise", o->init_noise, "Initial noise: safetensors file with 'noise' [N, C, H, W]");
  app->add_option("--save-latents", o->save_latents, "Write the final samples as safetensors ('latents')");
  app->add_option("--save-trajectory", o->save_trajectory, "Write the denoising trajectory as an H.264 MP4");
  return {app, [o] { return run_generate(*o); }};
}

}  // namespace ditgen::cli
