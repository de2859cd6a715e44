// Quantizing a DiT in place: which layers, how, and the description a model file stores.
#include "ditgen/quant/quantize_model.h"

#include <algorithm>
#include <cmath>
#include <set>

namespace ditgen::quant {

std::string ModelQuantization::label() const {
  if (fp8) return "FP8";
  if (activations == ActivationMode::StaticPerTensor) return c10::str("W", weight_bits, "A8-static");
  return c10::str("W", weight_bits, activations == ActivationMode::DynamicPerToken ? "A8" : "A32");
}

ActivationMode parse_activation_mode(const std::string& name, ErrorKind kind) {
  if (name == "dynamic") return ActivationMode::DynamicPerToken;
  if (name == "none") return ActivationMode::None;
  if (name == "static") return ActivationMode::StaticPerTensor;
  throw Error(kind, "unknown activation quantization '" + name + "' (use dynamic, static or none)");
}

std::string activation_mode_name(ActivationMode mode) {
  switch (mode) {
    case ActivationMode::None: return "none";
    case ActivationMode::DynamicPerToken: return "dynamic";
    case ActivationMode::StaticPerTensor: return "static";
  }
  return "?";
}

nlohmann::json to_json(const ModelQuantization& q) {
  return {{"weight_bits", q.weight_bits},
          {"symmetric", q.symmetry == Symmetry::Symmetric},
          {"activations", activation_mode_name(q.activations)},
          {"layers", q.layers}};
}

ModelQuantization model_quantization_from_json(const nlohmann::json& j) {
  auto field = [&](const char* key, nlohmann::json::value_t type) -> const nlohmann::json& {
    if (!j.is_object() || !j.contains(key) || j[key].type() != type)
      throw Error(ErrorKind::Model, std::string("quantization metadata: '") + key + "' is missing or of the wrong type");
    return j[key];
  };
  ModelQuantization q;
  const nlohmann::json& bits = field("weight_bits", nlohmann::json::value_t::number_unsigned);
  if (bits != 4 && bits != 8) throw Error(ErrorKind::Model, "quantization metadata: weight_bits must be 4 or 8");
  q.weight_bits = bits.get<int>();
  q.symmetry = field("symmetric", nlohmann::json::value_t::boolean).get<bool>() ? Symmetry::Symmetric : Symmetry::Asymmetric;
  try {
    q.activations = parse_activation_mode(field("activations", nlohmann::json::value_t::string).get<std::string>(),
                                          ErrorKind::Model);
  } catch (const Error& e) {
    throw Error(ErrorKind::Model, std::string("quantization metadata: ") + e.what());
  }
  std::set<std::string> seen;
  for (const nlohmann::json& layer : field("layers", nlohmann::json::value_t::array)) {
    if (!layer.is_string() || layer.get<std::string>().empty() || !seen.insert(layer.get<std::string>()).second)
      throw Error(ErrorKind::Model, "quantization metadata: layers must be distinct non-empty names");
    q.layers.push_back(layer.get<std::string>());
  }
  if (q.layers.empty()) throw Error(ErrorKind::Model, "quantization metadata: no quantized layers");
  return q;
}

std::vector<std::pair<std::string, nn::LoRALinear>> quantizable_layers(DiT& model) {
  std::vector<std::pair<std::string, nn::LoRALinear>> out;
  for (const auto& item : model->named_modules("", /*include_self=*/false)) {
    if (item.key().starts_with("text_encoder.")) continue;  // the prompt's encoder is not the backbone
    if (auto linear = std::dynamic_pointer_cast<nn::LoRALinearImpl>(item.value()))
      out.emplace_back(item.key(), nn::LoRALinear(linear));
  }
  return out;
}

void require_quantized_device(const at::Device& device, at::ScalarType dtype) {
  if (!device.is_cpu() && !device.is_cuda())
    throw Error(ErrorKind::Usage, "quantized models run on the CPU or CUDA, not " + device.str());
  const bool float_type = dtype == at::kFloat || (device.is_cuda() && (dtype == at::kBFloat16 || dtype == at::kHalf));
  if (!float_type)
    throw Error(ErrorKind::Usage, std::string("quantized models do not run in ") + c10::toString(dtype) + " on " +
                                      device.str() + (device.is_cpu() ? ": use --dtype fp32" : ": use fp32, bf16 or fp16"));
}

namespace {

// The layers quantize_model or add_intlora change, after the checks both share (see quantize_model).
std::vector<std::pair<std::string, nn::LoRALinear>> float_layers_to_quantize(DiT& model, int weight_bits) {
  require_bits(weight_bits);
  if (model->config().flex.lora())
    throw Error(ErrorKind::Usage, "a flexible model with per-patch LoRA adapters cannot be quantized");
  const at::Tensor any_parameter = model->parameters().front();
  if (any_parameter.scalar_type() != at::kFloat)
    throw Error(ErrorKind::Usage, "quantize a float32 model (its weights are quantized from float32)");
  require_quantized_device(any_parameter.device(), at::kFloat);  // where the result will run
  auto layers = quantizable_layers(model);
  if (layers.empty())
    throw Error(ErrorKind::Usage, "this model has no projections to quantize");
  for (const auto& [name, linear] : layers) {
    if (linear->is_quantized() || linear->has_intlora()) throw Error(ErrorKind::Usage, "the model is already quantized");
    if (linear->has_lora()) throw Error(ErrorKind::Usage, name + " has a LoRA adapter: merge and remove it first");
    if (weight_bits == 4 && linear->options.in_features() % 2 != 0)
      throw Error(ErrorKind::Usage, name + ": an odd input width cannot be packed at 4 bits");
  }
  return layers;
}

}  // namespace

ModelQuantization quantize_model(DiT& model, int weight_bits, Symmetry symmetry, ActivationMode activations) {
  auto layers = float_layers_to_quantize(model, weight_bits);
  ModelQuantization q{weight_bits, symmetry, activations, {}};
  const QuantSpec spec{weight_bits, symmetry, ClipSearch::Mse};
  at::NoGradGuard no_grad;
  for (auto& [name, linear] : layers) {
    try {
      QuantLinear layer(linear->weight.to(at::kFloat), linear->bias, spec, activations, kStaticActivationSpec);
      if (activations == ActivationMode::StaticPerTensor) layer->start_calibration();
      linear->quantize(std::move(layer));
    } catch (const Error& e) {
      throw Error(e.kind(), name + ": " + e.what());
    }
    q.layers.push_back(name);
  }
  return q;
}

void finish_static_calibration(DiT& model) {
  int finished = 0;
  for (auto& [name, linear] : quantizable_layers(model)) {
    if (!linear->is_quantized() || !linear->quantized->calibrating()) continue;
    try {
      linear->quantized->finish_calibration();
    } catch (const Error& e) {
      throw Error(e.kind(), name + ": " + e.what());
    }
    ++finished;
  }
  if (finished == 0) throw Error(ErrorKind::Usage, "the model has no layers being calibrated");
}

ModelQuantization quantize_model_fp8(DiT& model) {
  auto layers = float_layers_to_quantize(model, 8);
  ModelQuantization q{8, Symmetry::Symmetric, ActivationMode::DynamicPerToken, {}, /*fp8=*/true};
  at::NoGradGuard no_grad;
  for (auto& [name, linear] : layers) {
    linear->quantize(QuantLinear(quantize_weight_fp8(linear->weight), linear->bias));
    q.layers.push_back(name);
  }
  return q;
}

void add_intlora(DiT& model, const IntLoRASpec& spec) {
  auto layers = float_layers_to_quantize(model, spec.weight.bits);
  at::NoGradGuard no_grad;
  uint64_t seed = spec.seed;
  for (auto& [name, linear] : layers) {
    IntLoRASpec layer_spec = spec;
    layer_spec.seed = seed;
    seed += 2;  // a layer draws R from its seed and lora_A from the next
    try {
      linear->add_intlora(layer_spec);
    } catch (const Error& e) {
      throw Error(e.kind(), name + ": " + e.what());
    }
  }
}

ModelQuantization merge_intlora(DiT& model, MergeError* error) {
  ModelQuantization q{8, Symmetry::Symmetric, ActivationMode::DynamicPerToken, {}};
  double diff_squares = 0, weight_squares = 0;
  MergeError total;
  for (auto& [name, linear] : quantizable_layers(model)) {
    if (!linear->has_intlora()) continue;
    q.activations = linear->intlora->spec().activations;
    const MergeError e = linear->merge_intlora();
    total.requantized_rows += e.requantized_rows;
    total.max_abs = std::max(total.max_abs, e.max_abs);
    // Each layer weighs by its ||W'||^2 in the model's relative error.
    diff_squares += e.relative * e.relative * e.norm * e.norm;
    weight_squares += e.norm * e.norm;
    q.layers.push_back(name);
  }
  if (q.layers.empty()) throw Error(ErrorKind::Usage, "the model has no IntLoRA layers to merge");
  total.norm = std::sqrt(weight_squares);
  total.relative = weight_squares > 0 ? std::sqrt(diff_squares / weight_squares) : 0.0;
  if (error) *error = total;
  return q;
}

}  // namespace ditgen::quant
