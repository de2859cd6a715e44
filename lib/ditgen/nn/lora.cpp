#include "ditgen/nn/lora.h"

#include <cmath>
#include <string>

#include <ATen/CPUGeneratorImpl.h>

#include "ditgen/core/error.h"

namespace ditgen::nn {

LoRALinearImpl::LoRALinearImpl(int64_t in_features, int64_t out_features)
    : torch::nn::LinearImpl(in_features, out_features) {}

at::Tensor LoRALinearImpl::forward(const at::Tensor& x) {
  // at::linear, not the C++ frontend's linear (matmul, then a separate bias add): it folds [B, N, in] into
  // one GEMM with the bias in its epilogue.
  at::Tensor out = at::linear(x, weight, bias);  // [..., out]
  if (is_plain_linear()) return out;
  // Two thin matmuls cost r * (in + out) per token; forming B A would cost in * out.
  at::Tensor low = at::linear(x, lora_A);             // [..., r]
  return out + scale_ * at::linear(low, lora_B);      // [..., out]
}

void LoRALinearImpl::add_lora(int rank, double alpha, uint64_t seed) {
  if (rank < 1) throw Error(ErrorKind::Usage, "LoRA rank must be at least 1, got " + std::to_string(rank));
  if (has_lora()) throw Error(ErrorKind::Usage, "this linear layer already has a LoRA adapter");
  const int64_t in = options.in_features(), out = options.out_features();
  // kaiming_uniform_(a = sqrt(5)) as nn.Linear uses reduces to U(-1/sqrt(in), 1/sqrt(in)).
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  at::Tensor a = at::empty({rank, in}, at::kFloat).uniform_(-bound, bound, gen);
  const auto opts = weight.options();
  lora_A = register_parameter("lora_A", a.to(opts));
  lora_B = register_parameter("lora_B", at::zeros({out, rank}, opts));
  scale_ = alpha / rank;
  merged_ = false;
}

at::Tensor LoRALinearImpl::delta_f32() const {
  return at::matmul(lora_B.detach().to(at::kFloat), lora_A.detach().to(at::kFloat)) * scale_;  // [out, in]
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

std::shared_ptr<torch::nn::Module> LoRALinearImpl::clone(const std::optional<at::Device>&) const {
  throw Error(ErrorKind::Runtime, "LoRALinear cannot be cloned (the inherited Linear clone drops the adapter)");
}

}  // namespace ditgen::nn
