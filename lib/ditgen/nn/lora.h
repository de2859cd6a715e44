// A linear layer that can carry a low-rank adapter (LoRA, Hu et al. 2021): y = W x + b + (alpha / r) B A x.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>

#include "ditgen/quant/intlora.h"
#include "ditgen/quant/quant_linear.h"

namespace ditgen::nn {

// A projection's input on the fused inference path: float tokens, or tokens the kernel that made them already
// quantized per token (cuda/adaln.h's *_quantized) for a layer that takes_quantized_tokens().
struct LinearInput {
  at::Tensor values;                     // [..., in] float; undefined when quantized
  quant::QuantizedActivation quantized{};  // int8 [..., in] with per-token scales and sums
  at::ScalarType dtype = at::kFloat;     // the float stream's dtype: the layer's output dtype
};

// Subclasses torch::nn::LinearImpl so `module->as<torch::nn::Linear>()` (weight initialisation, model
// loading) still finds it and the state-dict keys stay `weight` / `bias`; the adapter adds `lora_A` /
// `lora_B` only while one is attached. Registered parameters follow Module::to() like weight and bias.
// Quantized (quant/quantize_model.h), it holds a quant::QuantLinear instead of its weight and bias: the layer
// keeps its place and type in the model, so every caller that holds it (Attention, CrossAttention, Mlp) runs
// the integer layer through forward(), and is_plain_linear() turns false for the paths that read `weight`.
class LoRALinearImpl : public torch::nn::LinearImpl {
 public:
  LoRALinearImpl(int64_t in_features, int64_t out_features);

  // IntLoRA: its adapted layer. Quantized: the quantized layer. Without an adapter, or merged: the plain
  // linear. Otherwise adds the low-rank path.
  at::Tensor forward(const at::Tensor& x);  // [..., in] -> [..., out]
  // The float values through forward(), or the quantized tokens through the integer layer.
  // (Not an overload of forward: TORCH_MODULE's operator() needs forward unique.)
  at::Tensor forward_input(const LinearInput& x);  // [..., in] -> [..., out]
  // GELU (tanh form) of forward_input: a quantized layer without adapters puts it in its GEMM's epilogue where
  // it can (QuantLinear::forward_gelu, forward_quantized).
  at::Tensor forward_gelu(const LinearInput& x);  // [..., in] -> [..., out]
  // Whether forward_input takes quantized tokens: an integer layer with dynamic per-token activations
  // and no adapter beside it.
  bool takes_quantized_tokens() const { return is_quantized() && !adapter_in_use() && quantized->takes_quantized_tokens(); }

  // Replaces weight and bias by `layer` (registered as `quantized`); weight and bias are dropped, so the
  // float weight no longer takes memory. Error(Usage) for a layer with adapters or IntLoRA, one already
  // quantized, or a quantized weight of another shape.
  void quantize(quant::QuantLinear layer);
  bool is_quantized() const { return !quantized.is_empty(); }

  // Replaces weight and bias by an IntLoRA layer built from them (its float copies dropped). Error(Usage) for
  // a layer that is quantized or has adapters, and IntLoRALinear's own refusals.
  void add_intlora(const quant::IntLoRASpec& spec);
  bool has_intlora() const { return !intlora.is_empty(); }
  // Turns the IntLoRA layer into the int8 quantized layer its merge makes (IntLoRALinearImpl::merge) and
  // returns that merge's error. Error(Usage) without IntLoRA.
  quant::MergeError merge_intlora();

  // Attaches lora_A [rank, in] (Kaiming-uniform like nn.Linear's weight, drawn on the CPU from `seed` so
  // every device gets the same values) and lora_B [out, rank] (zeros: the layer is unchanged at first),
  // scaled by alpha / rank, in the weight's dtype and device. Error(Usage) for rank < 1 or a second adapter.
  void add_lora(int rank, double alpha, uint64_t seed);
  // Whether an adapter is attached (merged or not).
  bool has_lora() const { return lora_A.defined(); }
  // Whether the adapter is folded into the weight (forward then skips it).
  bool merged() const { return merged_; }
  // Whether forward() is just the linear layer with effective_weight() (not quantized, and no adapter in
  // use or a merged one).
  bool is_plain_linear() const;
  // The adapter's rank r (0 without one).
  int rank() const { return static_cast<int>(has_lora() ? lora_A.size(0) : 0); }
  // alpha / r, the factor on the low-rank path.
  double scale() const { return scale_; }

  // weight += scale * B A, computed in float32 and rounded once (so bf16 weights lose no more than one
  // rounding); no-op when already merged. A quantized layer is re-quantized from its dequantized weight plus
  // scale * B A with its own bits, symmetry and activations (QLoRA's merge). Error(Usage) without an adapter.
  void merge();
  // weight -= scale * B A: the inverse of merge() up to rounding; no-op when not merged. Error(Usage) for a
  // merged quantized layer (the re-quantization cannot be undone).
  void unmerge();
  // Drops the adapter parameters; a merged adapter stays baked into the weight.
  void remove_lora();

  // Named adapters, one of which forward() can use instead of the one above (FlexiDiT keeps one per patch
  // size): lora_A_<name> [r, in] and lora_B_<name> [out, r] (zeros), initialised like add_lora.
  // Error(Usage) for rank < 1 or a name already used.
  void add_named_lora(const std::string& name, int rank, double alpha, uint64_t seed);
  // The named adapter forward() applies from now on; "" = none (the layer and its unnamed adapter).
  // Error(Usage) for an unknown name.
  void use_adapter(const std::string& name);
  // Keeps a merged weight copy (weight + scale B A, float32 math) per named adapter, so an active one costs
  // no extra FLOPs, only memory; `merged = false` drops the copies. Copies go stale when weights change.
  void set_named_merged(bool merged);
  // The weight forward() multiplies by: a merged named copy when one is active, else `weight`.
  const at::Tensor& effective_weight() const;

  // Cloneable<LinearImpl>::clone would copy only the LinearImpl part and lose the adapter: refuse.
  std::shared_ptr<torch::nn::Module> clone(const std::optional<at::Device>& device = std::nullopt) const override;

  at::Tensor lora_A;  // [r, in], undefined without an adapter
  at::Tensor lora_B;  // [out, r], undefined without an adapter
  quant::QuantLinear quantized{nullptr};  // set by quantize(); then weight and bias are undefined
  quant::IntLoRALinear intlora{nullptr};  // set by add_intlora(); then weight and bias are undefined

 private:
  // scale * B A as float32 [out, in]: the unnamed adapter's, or a named one's.
  static at::Tensor delta_f32(const at::Tensor& A, const at::Tensor& B, double scale);
  at::Tensor delta_f32() const { return delta_f32(lora_A, lora_B, scale_); }

  struct Named {
    at::Tensor A, B;     // registered parameters
    double scale = 0.0;
    at::Tensor merged;   // weight + scale B A when merged copies are kept
  };
  // [rank, in], Kaiming-uniform; Error(Usage) for rank < 1 or IntLoRA.
  at::Tensor draw_lora_A(int rank, uint64_t seed) const;
  // Whether forward() adds a low-rank path (an unmerged adapter, or an active named one without its copy).
  bool adapter_in_use() const;
  // Adapters take the weight's dtype and device; a quantized layer's are float32 on its device.
  at::TensorOptions adapter_options() const;
  void drop_float_weight();

  double scale_ = 0.0;
  bool merged_ = false;
  std::map<std::string, Named> named_;
  Named* active_ = nullptr;
};
TORCH_MODULE(LoRALinear);

}  // namespace ditgen::nn
