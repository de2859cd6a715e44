// Multi-head self-attention over all tokens (timm's Attention: fused qkv with bias, output projection).
#pragma once

#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include "ditgen/nn/lora.h"

namespace ditgen::nn {

class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(int hidden_size, int num_heads);
  at::Tensor forward(const at::Tensor& x);  // [B, N, D] -> [B, N, D]
  // Attention inside windows: x holds B * P windows of n tokens (window index = batch index modulo P) and
  // window_mask [P, n, n] bool says which tokens of each window attend to which (undefined: all).
  // [B * P, n, D] -> [B * P, n, D]
  at::Tensor forward(const at::Tensor& x, const at::Tensor& window_mask);

  LoRALinear qkv{nullptr};
  LoRALinear proj{nullptr};

 private:
  int num_heads_;
};
TORCH_MODULE(Attention);

// softmax(q k^T / sqrt(hd)) v (SDPA) with an optional per-window mask as in AttentionImpl::forward.
// q, k, v [B * P, H, n, hd], window_mask [P, n, n] bool or undefined -> [B * P, H, n, hd]
at::Tensor attention_core(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& window_mask);

// SDPA backend names in the order torch tries them by default.
std::vector<std::string> attention_backend_names();
// Puts one SDPA backend (flash, cudnn, efficient, math) first in the order torch tries them; "auto"
// restores torch's default order. Process-wide. Error(Usage) for another name.
void prefer_attention_backend(const std::string& name);
// The backend SDPA runs for queries [batch, heads, tokens, head_dim] with these options ("flash", "cudnn",
// "efficient", "math"), as torch chooses it now.
std::string attention_backend(int64_t batch, int64_t heads, int64_t tokens, int64_t head_dim,
                              const at::TensorOptions& options);

}  // namespace ditgen::nn
