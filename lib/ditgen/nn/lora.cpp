#include "ditgen/nn/lora.h"

#include <cmath>
#include <string>

#include <ATen/CPUGeneratorImpl.h>

#include "ditgen/core/error.h"

namespace ditgen::nn {

namespace {
// out + scale * (x A^T) B^T.
at::Tensor add_low_rank(const at::Tensor& out, const at::Tensor& x, const at::Tensor& A, const at::Tensor& B,
                        double scale) {
  // Two thin matmuls cost r * (in + out) per token; forming B A would cost in * out. The second one adds
  // into out in its GEMM (beta 1): one pass over [..., out] instead of three element-wise ones.
  const at::Tensor low = at::linear(x, A).reshape({-1, A.size(0)});                  // [M, r]
  const at::Tensor sum = at::addmm(out.reshape({-1, out.size(-1)}), low, B.t(), 1.0, scale);  // [M, out]
  return sum.view(out.sizes());                                                    // [..., out]
}
}  // namespace

LoRALinearImpl::LoRALinearImpl(int64_t in_features, int64_t out_features)
    : torch::nn::LinearImpl(in_features, out_features) {}

at::Tensor LoRALinearImpl::forward(const at::Tensor& x) {
  if (has_intlora()) return intlora->forward(x);  // [..., out]
  // at::linear, not the C++ frontend's linear (matmul, then a separate bias add): it folds [B, N, in] into
  // one GEMM with the bias in its epilogue.
  at::Tensor out = is_quantized() ? quantized->forward(x) : at::linear(x, effective_weight(), bias);  // [..., out]
  if (!adapter_in_use()) return out;
  if (active_) return add_low_rank(out, x, active_->A, active_->B, active_->scale);  // [..., out]
  return add_low_rank(out, x, lora_A, lora_B, scale_);                               // [..., out]
}

at::Tensor LoRALinearImpl::forward_input(const LinearInput& x) {
  if (x.values.defined()) return forward(x.values);  // [..., out]
  if (!takes_quantized_tokens()) throw Error(ErrorKind::Usage, "this layer does not take quantized tokens");
  return quantized->forward_quantized(x.quantized, x.dtype);  // [..., out]
}

at::Tensor LoRALinearImpl::forward_gelu(const LinearInput& x) {
  if (is_quantized() && !adapter_in_use() && x.values.defined())
    return quantized->forward_gelu(x.values);  // [..., out]
  if (!x.values.defined() && takes_quantized_tokens())
    return quantized->forward_quantized(x.quantized, x.dtype, /*gelu=*/true);  // [..., out]
  return at::gelu(forward_input(x), "tanh");                                   // [..., out]
}

bool LoRALinearImpl::adapter_in_use() const {
  if (active_) return !active_->merged.defined();
  return has_lora() && !merged_;
}

bool LoRALinearImpl::is_plain_linear() const {
  return !is_quantized() && !has_intlora() && !adapter_in_use();
}

const at::Tensor& LoRALinearImpl::effective_weight() const {
  return active_ && active_->merged.defined() ? active_->merged : weight;
}

at::Tensor LoRALinearImpl::draw_lora_A(int rank, uint64_t seed) const {
  if (rank < 1) throw Error(ErrorKind::Usage, "LoRA rank must be at least 1, got " + std::to_string(rank));
  if (has_intlora()) throw Error(ErrorKind::Usage, "this linear layer carries IntLoRA adapters already");
  // kaiming_uniform_(a = sqrt(5)) as nn.Linear uses reduces to U(-1/sqrt(in), 1/sqrt(in)).
  const int64_t in = options.in_features();
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::empty({rank, in}, at::kFloat).uniform_(-bound, bound, gen).to(adapter_options());
}

void LoRALinearImpl::add_named_lora(const std::string& name, int rank, double alpha, uint64_t seed) {
  if (name.empty() || named_.count(name)) throw Error(ErrorKind::Usage, "LoRA adapter name '" + name + "' is empty or taken");
  if (is_quantized()) throw Error(ErrorKind::Usage, "named LoRA adapters need a float linear layer");
  Named& n = named_[name];
  n.A = register_parameter("lora_A_" + name, draw_lora_A(rank, seed));
  n.B = register_parameter("lora_B_" + name, at::zeros({options.out_features(), rank}, adapter_options()));
  n.scale = alpha / rank;
}

void LoRALinearImpl::use_adapter(const std::string& name) {
  if (name.empty()) {
    active_ = nullptr;
    return;
  }
  auto it = named_.find(name);
  if (it == named_.end()) throw Error(ErrorKind::Usage, "this linear layer has no LoRA adapter '" + name + "'");
  active_ = &it->second;
}

void LoRALinearImpl::set_named_merged(bool merged) {
  at::NoGradGuard no_grad;
  for (auto& [name, n] : named_) {
    n.merged = merged ? (weight.to(at::kFloat) + delta_f32(n.A, n.B, n.scale)).to(weight.scalar_type()) : at::Tensor();
  }
}

void LoRALinearImpl::add_lora(int rank, double alpha, uint64_t seed) {
  if (has_lora()) throw Error(ErrorKind::Usage, "this linear layer already has a LoRA adapter");
  lora_A = register_parameter("lora_A", draw_lora_A(rank, seed));
  lora_B = register_parameter("lora_B", at::zeros({options.out_features(), rank}, adapter_options()));
  scale_ = alpha / rank;
  merged_ = false;
}

at::Tensor LoRALinearImpl::delta_f32(const at::Tensor& A, const at::Tensor& B, double scale) {
  return at::matmul(B.detach().to(at::kFloat), A.detach().to(at::kFloat)) * scale;  // [out, in]
}

at::TensorOptions LoRALinearImpl::adapter_options() const {
  if (is_quantized()) return quantized->weight_values().options().dtype(at::kFloat);  // float32 on the layer's device
  return weight.options();
}

void LoRALinearImpl::merge() {
  if (!has_lora()) throw Error(ErrorKind::Usage, "cannot merge: this linear layer has no LoRA adapter");
  if (merged_) return;
  at::NoGradGuard no_grad;
  if (is_quantized()) {
    const quant::QuantizedWeight q = quantized->quantized_weight();
    const quant::QuantSpec spec{q.bits, q.symmetry, quant::ClipSearch::Mse};
    quantized = replace_module("quantized", quant::QuantLinear(quant::dequantize(q) + delta_f32(), quantized->bias(),
                                                               spec, quantized->activation_mode()));
  } else {
    weight.copy_(weight.to(at::kFloat) + delta_f32());
  }
  merged_ = true;
}

void LoRALinearImpl::unmerge() {
  if (!merged_) return;
  if (is_quantized()) throw Error(ErrorKind::Usage, "a LoRA adapter merged into a quantized layer cannot be taken out");
  at::NoGradGuard no_grad;
  weight.copy_(weight.to(at::kFloat) - delta_f32());
  merged_ = false;
}

void LoRALinearImpl::remove_lora() {
  if (!has_lora()) return;
  parameters_.erase("lora_A");
  parameters_.erase("lora_B");
  lora_A = at::Tensor();
  lora_B = at::Tensor();
  scale_ = 0.0;
  merged_ = false;
}

void LoRALinearImpl::quantize(quant::QuantLinear layer) {
  if (has_lora() || !named_.empty() || has_intlora())
    throw Error(ErrorKind::Usage, "cannot quantize a linear layer with adapters: quantize first, then add them");
  if (is_quantized()) throw Error(ErrorKind::Usage, "this linear layer is already quantized");
  const at::Tensor& values = layer->weight_values();
  if (values.size(0) != options.out_features() || values.size(1) != options.in_features())
    throw Error(ErrorKind::Usage, c10::str("a quantized weight of shape ", values.sizes(), " for a linear layer of ",
                                           options.in_features(), " -> ", options.out_features()));
  quantized = register_module("quantized", std::move(layer));
  drop_float_weight();
}

void LoRALinearImpl::drop_float_weight() {
  parameters_.erase("weight");
  parameters_.erase("bias");
  weight = at::Tensor();
  bias = at::Tensor();
}

void LoRALinearImpl::add_intlora(const quant::IntLoRASpec& spec) {
  if (is_quantized() || has_lora() || !named_.empty() || has_intlora())
    throw Error(ErrorKind::Usage, "IntLoRA adapts a float linear layer without other adapters");
  intlora = register_module("intlora", quant::IntLoRALinear(weight, bias, spec));
  intlora->to(weight.device());
  drop_float_weight();
}

quant::MergeError LoRALinearImpl::merge_intlora() {
  if (!has_intlora()) throw Error(ErrorKind::Usage, "this linear layer has no IntLoRA adapter to merge");
  quant::MergeError error;
  quantized = register_module("quantized", intlora->merge(&error));
  unregister_module("intlora");
  intlora = nullptr;
  return error;
}

std::shared_ptr<torch::nn::Module> LoRALinearImpl::clone(const std::optional<at::Device>&) const {
  throw Error(ErrorKind::Runtime, "LoRALinear cannot be cloned (the inherited Linear clone drops the adapter)");
}

}  // namespace ditgen::nn
