// Quantized layers to and from model-file tensors, every stored value checked before it is used.
#include "ditgen/quant/quantized_tensors.h"

#include <set>

#include "ditgen/io/tensor_io.h"
#include "ditgen/quant/int4_pack.h"

namespace ditgen::quant {

std::array<std::string, 4> quantized_tensor_names(const std::string& layer) {
  return {layer + ".weight_values", layer + ".weight_scales", layer + ".weight_zero_points", layer + ".bias"};
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
    linear->quantize(QuantLinear(stored.weight, stored.bias, q.activations));
  }
}

}  // namespace ditgen::quant
