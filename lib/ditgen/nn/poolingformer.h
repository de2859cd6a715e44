// The Poolingformer block (SparseDiT, docs/SPARSEDIT.md): a DiT block whose attention is the mean of the
// values, broadcast to every token. O(N): no queries or keys.
#pragma once

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>

#include "ditgen/nn/mlp.h"

namespace ditgen::nn {

// proj(v(mean over tokens of x)): the paper's softmax over an all-ones N x N matrix times V is a plain mean,
// and a mean commutes with the value projection, so both projections act on one token.
class PoolingAttentionImpl : public torch::nn::Module {
 public:
  explicit PoolingAttentionImpl(int hidden_size);
  at::Tensor forward(const at::Tensor& x);  // [B, N, D] -> [B, 1, D] (the same for every token)

  torch::nn::Linear v{nullptr};
  torch::nn::Linear proj{nullptr};
};
TORCH_MODULE(PoolingAttention);

class PoolingformerBlockImpl : public torch::nn::Module {
 public:
  PoolingformerBlockImpl(int hidden_size, int mlp_hidden);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& c);  // [B, N, D], [B, D] -> [B, N, D]

  PoolingAttention attn{nullptr};
  Mlp mlp{nullptr};
  torch::nn::Sequential adaLN_modulation{nullptr};  // SiLU, Linear(D -> 6D)
};
TORCH_MODULE(PoolingformerBlock);

}  // namespace ditgen::nn
