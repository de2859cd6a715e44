#include "ditgen/nn/lora.h"

#include <cmath>
#include <string>

#include <ATen/CPUGeneratorImpl.h>

#include "ditgen/core/error.h"

namespace ditgen::nn {

LoRALinearImpl::LoRALinearImpl(int64_t in_features, int64_t out_features)
    : torch::nn::LinearImpl(in_features, out_features) {}

at::Tensor LoRALinearImpl::forward(const at::Tensor& x) {
  if (is_quantized()) return quantized->forward(x);  // [..., out]
  // at::linear, not the C++ frontend's linear (matmul, then a separate bias add): it folds [B, N, in] into
  // one GEMM with the bias in its epilogue.
  at::Tensor out = at::linear(x, effective_weight(), bias);  // [..., out]
  if (is_plain_linear()) return out;
  if (active_) return out + active_->scale * at::linear(at::linear(x, active_->A), active_->B);  // [..., out]
  // Two thin matmuls cost r * (in + out) per token; forming B A would cost in * out.
  at::Tensor low = at::linear(x, lora_A);             // [..., r]
  return out + scale_ * at::linear(low, lora_B);      // [..., out]
}

bool LoRALinearImpl::is_plain_linear() const {
  if (is_quantized()) return false;
  if (active_) return active_->merged.defined();
  return !has_lora() || merged_;
}

const at::Tensor& LoRALinearImpl::effective_weight() const {
  return active_ && active_->merged.defined() ? active_->merged : weight;
}

at::Tensor LoRALinearImpl::draw_lora_A(int rank, uint64_t seed) const {
  if (rank < 1) throw Error(ErrorKind::Usage, "LoRA rank must be at least 1, got " + std::to_string(rank));
  if (is_quantized()) throw Error(ErrorKind::Usage, "LoRA adapters on a quantized linear layer (IntLoRA) are not supported yet");
  // kaiming_uniform_(a = sqrt(5)) as nn.Linear uses reduces to U(-1/sqrt(in), 1/sqrt(in)).
  const int64_t in = options.in_features();
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::empty({rank, in}, at::kFloat).uniform_(-bound, bound, gen).to(weight.options());
}

void LoRALinearImpl::add_named_lora(const std::string& name, int rank, double alpha, uint64_t seed) {
  if (name.empty() || named_.count(name)) throw Error(ErrorKind::Usage, "LoRA adapter name '" + name + "' is empty or taken");
  Named& n = named_[name];
  n.A = register_parameter("lora_A_" + name, draw_lora_A(rank, seed));
  n.B = register_parameter("lora_B_" + name, at::zeros({options.out_features(), rank}, weight.options()));
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
  lora_B = register_parameter("lora_B", at::zeros({options.out_features(), rank}, weight.options()));
  scale_ = alpha / rank;
  merged_ = false;
}

at::Tensor LoRALinearImpl::delta_f32(const at::Tensor& A, const at::Tensor& B, double scale) {
  return at::matmul(B.detach().to(at::kFloat), A.detach().to(at::kFloat)) * scale;  // [out, in]
}

void LoRALinearImpl::merge() {
  if (!has_lora()) throw Error(ErrorKind::Usage, "cannot merge: this linear layer has no LoRA adapter");
  if (merged_) return;
  at::NoGradGuard no_grad;
  weight.copy_(weight.to(at::kFloat) + delta_f32());
  merged_ = true;
}

void LoRALinearImpl::unmerge() {
  if (!merged_) return;
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
  if (has_lora() || !named_.empty())
    throw Error(ErrorKind::Usage, "cannot quantize a linear layer with LoRA adapters (merging them into the integers, IntLoRA, is not done)");
  if (is_quantized()) throw Error(ErrorKind::Usage, "this linear layer is already quantized");
  const at::Tensor& values = layer->quantized_weight().values;
  if (values.size(0) != options.out_features() || values.size(1) != options.in_features())
    throw Error(ErrorKind::Usage, c10::str("a quantized weight of shape ", values.sizes(), " for a linear layer of ",
                                           options.in_features(), " -> ", options.out_features()));
  quantized = register_module("quantized", std::move(layer));
  parameters_.erase("weight");
  parameters_.erase("bias");
  weight = at::Tensor();
  bias = at::Tensor();
}

std::shared_ptr<torch::nn::Module> LoRALinearImpl::clone(const std::optional<at::Device>&) const {
  throw Error(ErrorKind::Runtime, "LoRALinear cannot be cloned (the inherited Linear clone drops the adapter)");
}

}  // namespace ditgen::nn
