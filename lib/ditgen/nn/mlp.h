// Token-wise MLP: Linear, GELU (tanh approximation), Linear (timm's Mlp as DiT uses it).
#pragma once

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include "ditgen/nn/lora.h"

namespace ditgen::nn {

// GELU (tanh form) of a linear layer, x W^T + b: on CUDA's fused path the GELU is the GEMM's epilogue
// (cuBLASLt GELU_BIAS), so the activation is written once. [..., in] -> [..., out]
at::Tensor linear_gelu(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);
// GELU (tanh form) of layer(x): a plain layer through linear_gelu, any other (integer, FP8, or with an unmerged
// adapter) through its forward_gelu, which puts the GELU in its own GEMM's epilogue where it can.
at::Tensor linear_gelu(LoRALinearImpl& layer, const LinearInput& x);  // [..., in] -> [..., out]

class MlpImpl : public torch::nn::Module {
 public:
  MlpImpl(int hidden_size, int mlp_hidden);
  at::Tensor forward(const at::Tensor& x);    // [B, N, D] -> [B, N, D]
  at::Tensor forward_input(const LinearInput& x);  // the same, fc1 given float or quantized tokens

  LoRALinear fc1{nullptr};
  LoRALinear fc2{nullptr};
};
TORCH_MODULE(Mlp);

}  // namespace ditgen::nn
