// Multi-head self-attention over all tokens (timm's Attention: fused qkv with bias, output projection).
#pragma once

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include "ditgen/nn/lora.h"

namespace ditgen::nn {

class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(int hidden_size, int num_heads);
  at::Tensor forward(const at::Tensor& x);  // [B, N, D] -> [B, N, D]

  LoRALinear qkv{nullptr};
  LoRALinear proj{nullptr};

 private:
  int num_heads_;
};
TORCH_MODULE(Attention);

}  // namespace ditgen::nn
