#include "ditgen/nn/sparse_dense_module.h"

#include "ditgen/cuda/adaln.h"
#include "ditgen/cuda/token_grid.h"
#include "ditgen/nn/dit_block.h"

namespace ditgen::nn {

TokenMergeBlockImpl::TokenMergeBlockImpl(int hidden_size, int num_heads, int mlp_hidden) {
  attn = register_module("attn", CrossAttention(hidden_size, num_heads));
  mlp = register_module("mlp", Mlp(hidden_size, mlp_hidden));
  adaLN_modulation = register_module("adaLN_modulation", adaln_head(hidden_size, 6));
}

at::Tensor TokenMergeBlockImpl::forward(const at::Tensor& sparse, const at::Tensor& dense, const at::Tensor& c) {
  std::vector<at::Tensor> mod = adaLN_modulation->forward(c).chunk(6, 1);  // 6 x [B, D]
  at::Tensor a = attn->forward(cuda::layer_norm_modulate(sparse, mod[0], mod[1]),
                               cuda::layer_norm_modulate(dense, mod[0], mod[1]));  // [B, M, D]
  return attention_residual_then_mlp(sparse, a, mod, mlp);                          // [B, M, D]
}

TokenRecoveryBlockImpl::TokenRecoveryBlockImpl(int hidden_size, int num_heads, int mlp_hidden) {
  merged_layer1 = register_module("merged_layer1", torch::nn::Linear(hidden_size, hidden_size));
  merged_layer2 = register_module("merged_layer2", torch::nn::Linear(hidden_size, hidden_size));
  attn = register_module("attn", CrossAttention(hidden_size, num_heads));
  mlp = register_module("mlp", Mlp(hidden_size, mlp_hidden));
  adaLN_modulation = register_module("adaLN_modulation", adaln_head(hidden_size, 6));
}

void TokenRecoveryBlockImpl::start_as_dense() {
  at::NoGradGuard no_grad;
  for (at::Tensor t : {merged_layer1->weight, merged_layer1->bias, merged_layer2->bias}) t.zero_();
  merged_layer2->weight.copy_(at::eye(merged_layer2->weight.size(0), merged_layer2->weight.options()));
}

at::Tensor TokenRecoveryBlockImpl::merge(const at::Tensor& sparse, const at::Tensor& dense, int grid, int grid_h,
                                         int grid_w) {
  // Nearest upsampling only repeats rows, so W1 acts on the S x S tokens before it (fewer FLOPs, same result).
  at::Tensor merged = at::linear(dense, merged_layer2->weight, merged_layer2->bias);       // [B, N, D]
  const at::Tensor w1 = at::linear(sparse, merged_layer1->weight, merged_layer1->bias);    // [B, S*S, D]
  return cuda::add_upsampled_tokens_(merged, w1, grid, grid_h, grid_w);                    // [B, N, D]
}

at::Tensor TokenRecoveryBlockImpl::forward(const at::Tensor& sparse, const at::Tensor& dense, const at::Tensor& c,
                                           int grid, int grid_h, int grid_w) {
  std::vector<at::Tensor> mod = adaLN_modulation->forward(c).chunk(6, 1);  // 6 x [B, D]
  at::Tensor merged = merge(sparse, dense, grid, grid_h, grid_w);           // [B, N, D]
  at::Tensor a = attn->forward(cuda::layer_norm_modulate(merged, mod[0], mod[1]),
                               cuda::layer_norm_modulate(sparse, mod[0], mod[1]));  // [B, N, D]
  return attention_residual_then_mlp(merged, a, mod, mlp);                           // [B, N, D]
}

SparseDenseModuleImpl::SparseDenseModuleImpl(int hidden_size, int num_heads, int mlp_hidden, int semantic, int dense,
                                             bool with_text) {
  token_merge = register_module("token_merge", TokenMergeBlock(hidden_size, num_heads, mlp_hidden));
  semantic_blocks = register_module("semantic_blocks", torch::nn::ModuleList());
  for (int i = 0; i < semantic; ++i) semantic_blocks->push_back(DiTBlock(hidden_size, num_heads, mlp_hidden, with_text));
  token_recover = register_module("token_recover", TokenRecoveryBlock(hidden_size, num_heads, mlp_hidden));
  normal_blocks = register_module("normal_blocks", torch::nn::ModuleList());
  for (int i = 0; i < dense; ++i) normal_blocks->push_back(DiTBlock(hidden_size, num_heads, mlp_hidden, with_text));
}

at::Tensor SparseDenseModuleImpl::forward(const at::Tensor& x, const at::Tensor& c, int grid, int grid_h, int grid_w,
                                          const TextTokens& text) {
  at::Tensor sparse = cuda::pool_tokens(x, grid_h, grid_w, grid);                                 // [B, S*S, D]
  sparse = token_merge->forward(sparse, x, c);                                                     // [B, S*S, D]
  for (const auto& block : *semantic_blocks) sparse = block->as<DiTBlock>()->forward(sparse, c, text);  // [B, S*S, D]
  at::Tensor h = token_recover->forward(sparse, x, c, grid, grid_h, grid_w);                       // [B, N, D]
  for (const auto& block : *normal_blocks) h = block->as<DiTBlock>()->forward(h, c, text);         // [B, N, D]
  return h;
}

}  // namespace ditgen::nn
