// SparseDiT's sparse-dense token module (SDTM, docs/SPARSEDIT.md): the tokens are pooled to an S x S grid,
// merged with the dense ones by cross attention, processed sparsely, then recovered to the dense grid.
#pragma once

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>

#include "ditgen/nn/attention.h"
#include "ditgen/nn/mlp.h"
#include "ditgen/nn/text_cross_attention.h"

namespace ditgen::nn {

// Token merge: the sparse tokens attend to the dense ones (both normed and modulated with the same
// attention shift and scale), then an MLP; adaLN-Zero gated.
class TokenMergeBlockImpl : public torch::nn::Module {
 public:
  TokenMergeBlockImpl(int hidden_size, int num_heads, int mlp_hidden);
  at::Tensor forward(const at::Tensor& sparse, const at::Tensor& dense, const at::Tensor& c);  // [B,M,D],[B,N,D],[B,D] -> [B,M,D]

  CrossAttention attn{nullptr};
  Mlp mlp{nullptr};
  torch::nn::Sequential adaLN_modulation{nullptr};  // SiLU, Linear(D -> 6D)
};
TORCH_MODULE(TokenMergeBlock);

// Token recovery: merged = W1 upsample(sparse) + W2 dense (W1 = 0, W2 = I at conversion, so it starts as the
// dense tokens); merged attends to the sparse tokens, then an MLP; adaLN-Zero gated.
class TokenRecoveryBlockImpl : public torch::nn::Module {
 public:
  TokenRecoveryBlockImpl(int hidden_size, int num_heads, int mlp_hidden);
  // W1 = 0, W2 = I, biases 0: merged tokens are the dense ones (after conversion and a fresh init).
  void start_as_dense();
  // The merged tokens alone (the first step of forward). [B, S*S, D], [B, N, D] -> [B, N, D]
  at::Tensor merge(const at::Tensor& sparse, const at::Tensor& dense, int grid, int grid_h, int grid_w);
  at::Tensor forward(const at::Tensor& sparse, const at::Tensor& dense, const at::Tensor& c, int grid, int grid_h,
                     int grid_w);  // [B, S*S, D], [B, N, D], [B, D] -> [B, N, D]

  torch::nn::Linear merged_layer1{nullptr};  // on the upsampled sparse tokens
  torch::nn::Linear merged_layer2{nullptr};  // on the dense tokens
  CrossAttention attn{nullptr};
  Mlp mlp{nullptr};
  torch::nn::Sequential adaLN_modulation{nullptr};  // SiLU, Linear(D -> 6D)
};
TORCH_MODULE(TokenRecoveryBlock);

// One SDTM: token merge, `semantic` DiT blocks on the S x S tokens, token recovery, `dense` DiT blocks. In a
// text model the semantic and dense blocks attend to the prompt (the merge and recovery blocks do not).
class SparseDenseModuleImpl : public torch::nn::Module {
 public:
  SparseDenseModuleImpl(int hidden_size, int num_heads, int mlp_hidden, int semantic, int dense, bool with_text = false);
  // x on a grid_h x grid_w token grid, run with an S x S sparse grid. [B, N, D], [B, D], [B, L, D] -> [B, N, D]
  at::Tensor forward(const at::Tensor& x, const at::Tensor& c, int grid, int grid_h, int grid_w,
                     const TextTokens& text = {});

  TokenMergeBlock token_merge{nullptr};
  torch::nn::ModuleList semantic_blocks{nullptr};
  TokenRecoveryBlock token_recover{nullptr};
  torch::nn::ModuleList normal_blocks{nullptr};
};
TORCH_MODULE(SparseDenseModule);

}  // namespace ditgen::nn
