// Quantized layers to and from model-file tensors, every stored value checked before it is used.
#include "ditgen/quant/quantized_tensors.h"

#include <cmath>
#include <set>

#include "ditgen/io/tensor_io.h"
#include "ditgen/quant/int4_pack.h"

namespace ditgen::quant {

std::array<std::string, 4> quantized_tensor_names(const std::string& layer) {
  return {layer + ".weight_values", layer + ".weight_scales", layer + ".weight_zero_points", layer + ".bias"};
}

std::vector<std::string> stored_tensor_names(const std::string& layer, const ModelQuantization& q) {
  const auto weight = quantized_tensor_names(layer);
  std::vector<std::string> out(weight.begin(), weight.end());
  if (q.activations == ActivationMode::StaticPerTensor) {
    out.push_back(layer + ".input_scale");
    out.push_back(layer + ".input_zero_point");
  }
  return out;
}

std::vector<std::pair<std::string, at::Tensor>> quantized_layer_tensors(DiT& model, const ModelQuantization& q) {
  if (q.fp8) throw Error(ErrorKind::Usage, "FP8 layers are made when a float model is loaded, not stored in files");
  std::vector<std::pair<std::string, at::Tensor>> out;
  std::vector<std::string> quantized;
  for (const auto& [name, linear] : quantizable_layers(model)) {
    if (!linear->is_quantized()) continue;
    quantized.push_back(name);
    const QuantizedWeight w = linear->quantized->quantized_weight();
    const auto names = quantized_tensor_names(name);
    out.emplace_back(names[0], q.weight_bits == 4 ? pack_int4(w.values) : w.values);
    out.emplace_back(names[1], w.scales);
    out.emplace_back(names[2], w.zero_points);
    out.emplace_back(names[3], linear->quantized->bias());
    if (q.activations == ActivationMode::StaticPerTensor) {
      const StaticActivationQuantizer& input = linear->quantized->static_activations();
      if (!input.calibrated()) throw Error(ErrorKind::Usage, name + ": its static activations are not calibrated");
      const auto all = stored_tensor_names(name, q);
      out.emplace_back(all[4], at::full({1}, input.scale(), at::kFloat));
      out.emplace_back(all[5], at::full({1}, input.zero_point(), at::kInt));
    }
  }
  if (quantized != q.layers)
    throw Error(ErrorKind::Usage, "the model's quantized layers are not the ones its quantization description lists");
  return out;
}

namespace {

// One layer's tensors from the file, checked (read_quantized_layers' rules).
StoredLayer read_layer(const io::SafetensorsFile& file, const std::string& layer, const ModelQuantization& q) {
  const std::string where = file.path().string() + ": ";
  const auto names = quantized_tensor_names(layer);
  auto fail = [&](const std::string& name, const std::string& what) {
    throw Error(ErrorKind::Model, where + "tensor '" + name + "' of quantized layer " + layer + " " + what);
  };
  auto read = [&](const std::string& name, io::DType dtype) {
    const io::TensorView* view = file.find(name);
    if (!view) throw Error(ErrorKind::Model, where + "missing tensor '" + name + "' of quantized layer " + layer);
    if (view->dtype != dtype)
      fail(name, "has dtype " + std::string(io::dtype_name(view->dtype)) + ", not " + std::string(io::dtype_name(dtype)));
    return io::to_tensor(*view);
  };
  const at::Tensor stored = read(names[0], q.weight_bits == 4 ? io::DType::U8 : io::DType::I8);
  if (stored.dim() != 2 || stored.numel() == 0) fail(names[0], c10::str("has shape ", stored.sizes(), ", not [out, in]"));
  const int64_t rows = stored.size(0);
  StoredLayer out;
  out.weight.bits = q.weight_bits;
  out.weight.symmetry = q.symmetry;
  out.weight.values = q.weight_bits == 4 ? unpack_int4(stored) : stored;  // int8 [out, in]
  out.weight.scales = read(names[1], io::DType::F32);
  out.weight.zero_points = read(names[2], io::DType::I32);
  out.bias = read(names[3], io::DType::F32);
  for (const auto& [name, t] : {std::pair{names[1], out.weight.scales}, std::pair{names[2], out.weight.zero_points},
                                std::pair{names[3], out.bias}})
    if (t.dim() != 1 || t.size(0) != rows)
      fail(name, c10::str("has shape ", t.sizes(), " but its weight has ", rows, " rows"));
  if (!at::isfinite(out.weight.scales).all().item<bool>() || !(out.weight.scales > 0).all().item<bool>())
    fail(names[1], "holds a scale that is not finite and > 0");
  const IntegerGrid grid = integer_grid(q.weight_bits, q.symmetry);
  auto off_grid = [&](const at::Tensor& t) { return ((t < grid.min) | (t > grid.max)).any().item<bool>(); };
  const std::string range = c10::str(grid.min, "..", grid.max, ", the ", q.weight_bits, "-bit ",
                                     q.symmetry == Symmetry::Symmetric ? "symmetric" : "asymmetric", " grid");
  if (off_grid(out.weight.values)) fail(names[0], "holds a value outside " + range);
  if (off_grid(out.weight.zero_points)) fail(names[2], "holds a zero point outside " + range);
  if (q.symmetry == Symmetry::Symmetric && out.weight.zero_points.ne(0).any().item<bool>())
    fail(names[2], "holds a zero point other than 0 in a symmetric quantization");
  if (q.activations == ActivationMode::StaticPerTensor) {
    const auto all = stored_tensor_names(layer, q);
    const at::Tensor scale = read(all[4], io::DType::F32), zero_point = read(all[5], io::DType::I32);
    if (scale.numel() != 1) fail(all[4], c10::str("has shape ", scale.sizes(), ", not [1]"));
    if (zero_point.numel() != 1) fail(all[5], c10::str("has shape ", zero_point.sizes(), ", not [1]"));
    out.input_scale = scale.item<double>();
    out.input_zero_point = zero_point.item<int64_t>();
    if (!std::isfinite(out.input_scale) || !(out.input_scale > 0)) fail(all[4], "is not finite and > 0");
    const IntegerGrid input_grid = integer_grid(kStaticActivationSpec.bits, kStaticActivationSpec.symmetry);
    if (out.input_zero_point < input_grid.min || out.input_zero_point > input_grid.max)
      fail(all[5], c10::str("is outside ", input_grid.min, "..", input_grid.max));
  }
  return out;
}

}  // namespace

std::map<std::string, StoredLayer> read_quantized_layers(const io::SafetensorsFile& file, const ModelQuantization& q) {
  std::map<std::string, StoredLayer> out;
  for (const std::string& layer : q.layers) out.emplace(layer, read_layer(file, layer, q));
  return out;
}

void install_quantized_layers(DiT& model, std::map<std::string, StoredLayer> layers, const ModelQuantization& q,
                              const std::string& where) {
  if (!q.quantized()) return;  // a float model
  auto targets = quantizable_layers(model);
  std::set<std::string> known;
  for (const auto& [name, linear] : targets) {
    known.insert(name);
    if (!layers.count(name))
      throw Error(ErrorKind::Model, where + ": the quantization metadata does not list layer " + name +
                                        " (a model is quantized whole)");
  }
  for (const std::string& layer : q.layers)
    if (!known.count(layer))
      throw Error(ErrorKind::Model, where + ": the quantization metadata lists " + layer +
                                        ", which is not a quantizable layer of this model's config");
  for (auto& [name, linear] : targets) {
    StoredLayer& stored = layers.at(name);
    const std::vector<int64_t> shape{linear->options.out_features(), linear->options.in_features()};
    if (stored.weight.values.sizes() != at::IntArrayRef(shape))
      throw Error(ErrorKind::Model, where + ": tensor '" + quantized_tensor_names(name)[0] + "' holds a " +
                                        c10::str(stored.weight.values.sizes()) + " weight but the config needs " +
                                        c10::str(at::IntArrayRef(shape)));
    QuantLinear layer(stored.weight, stored.bias, q.activations, kStaticActivationSpec);
    if (q.activations == ActivationMode::StaticPerTensor)
      layer->restore_calibration(stored.input_scale, stored.input_zero_point);
    linear->quantize(std::move(layer));
  }
}

}  // namespace ditgen::quant
