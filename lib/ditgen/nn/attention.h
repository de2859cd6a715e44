// Multi-head self-attention over all tokens (timm's Attention: fused qkv with bias, output projection).
#pragma once

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>

namespace ditgen::nn {

class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(int hidden_size, int num_heads);
  at::Tensor forward(const at::Tensor& x);  // [B, N, D] -> [B, N, D]

  torch::nn::Linear qkv{nullptr};
  torch::nn::Linear proj{nullptr};

 private:
  int num_heads_;
};
TORCH_MODULE(Attention);

}  // namespace ditgen::nn
