// Quantized DiT models (docs/QUANT.md): every attention, cross-attention and MLP projection of the backbone
// quantized per output channel (8 or 4 bits) inside its LoRALinear, with dynamic int8 or float activations.
// Embeddings, adaLN heads, the text encoder and the final layer stay float. The model file side
// (tensor names, checks) is quant/quantized_tensors.h.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "ditgen/models/dit.h"
#include "ditgen/quant/intlora.h"
#include "ditgen/quant/quant_linear.h"
#include "ditgen/quant/quantizer.h"

namespace ditgen::quant {

// How a model is quantized and which layers are; a model file stores it as the `ditgen.quant` metadata.
struct ModelQuantization {
  int weight_bits = 8;  // 4 or 8
  Symmetry symmetry = Symmetry::Asymmetric;
  ActivationMode activations = ActivationMode::DynamicPerToken;
  std::vector<std::string> layers;  // dotted module names in module order; empty for a float model
  bool fp8 = false;  // FP8 layers (quantize_model_fp8): made at load, never stored

  bool quantized() const { return !layers.empty(); }
  // "W8A8" (dynamic int8 activations), "W8A8-static", "W4A32" (float activations) or "FP8".
  std::string label() const;
};

// The static activation quantizer of every layer: 8 bits, asymmetric, one scale and zero point per tensor, the
// MSE clip search over all calibration batches.
inline const QuantSpec kStaticActivationSpec{8, Symmetry::Asymmetric, ClipSearch::Mse};

// "dynamic", "static" or "none"; Error(kind) for another name.
ActivationMode parse_activation_mode(const std::string& name, ErrorKind kind);
std::string activation_mode_name(ActivationMode mode);

// {"weight_bits": 8, "symmetric": false, "activations": "dynamic", "layers": [...]}
nlohmann::json to_json(const ModelQuantization& q);
// Error(Model) for missing or mistyped fields, bits other than 4 or 8, an unknown activation mode, an
// empty, repeated or empty-named layer list.
ModelQuantization model_quantization_from_json(const nlohmann::json& j);

// The linears a model quantizes: every LoRALinear outside the text encoder, i.e. the self-attention
// (qkv, proj), cross-attention (q, kv, proj: text, PT-DiT proxies, SparseDiT modules) and MLP (fc1, fc2)
// projections of all blocks. With their dotted names, in module order.
std::vector<std::pair<std::string, nn::LoRALinear>> quantizable_layers(DiT& model);

// Error(Usage) unless a quantized model runs here: on the CPU in float32, or on CUDA in fp32, bf16 or fp16
// (the integer kernels: int_gemm.h).
void require_quantized_device(const at::Device& device, at::ScalarType dtype);

// Quantizes those layers in place: weights per output channel with the MSE clip search, the float weights
// dropped. Returns the description to store. With static activations the layers start calibrating: run the
// model over calibration inputs (pipeline/calibration.h), then finish_static_calibration. Error(Usage) for
// bits other than 4 or 8,
// a model that is not float32 (on the CPU or CUDA), one without such layers, one with LoRA
// adapters (a lora-mode flexible model too) or already quantized, an odd input width at 4 bits (it could not
// be packed).
ModelQuantization quantize_model(DiT& model, int weight_bits, Symmetry symmetry, ActivationMode activations);

// Finishes every calibrating layer's static quantizer. Error(Usage) when none is calibrating or one observed
// nothing.
void finish_static_calibration(DiT& model);

// FP8 (fp8_linear.h) on the same layers, in place: the speed reference. Refuses what quantize_model refuses.
ModelQuantization quantize_model_fp8(DiT& model);

// IntLoRA (quant/intlora.h) on every layer quantize_model would quantize, each from its float weight; the i-th
// layer draws R from spec.seed + 2 i and lora_A from the seed after. Refuses what quantize_model refuses.
void add_intlora(DiT& model, const IntLoRASpec& spec);
// Merges every IntLoRA layer into its int8 layer and returns the description to store (8 bits, symmetric, the
// adapters' activations). `error`: the merge error over all layers (relative: of the whole model's adapted
// weights). Error(Usage) for a model without IntLoRA layers.
ModelQuantization merge_intlora(DiT& model, MergeError* error = nullptr);

}  // namespace ditgen::quant
