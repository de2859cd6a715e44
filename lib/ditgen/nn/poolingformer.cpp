#include "ditgen/nn/poolingformer.h"

#include "ditgen/cuda/adaln.h"
#include "ditgen/nn/dit_block.h"

namespace ditgen::nn {

PoolingAttentionImpl::PoolingAttentionImpl(int hidden_size) {
  v = register_module("v", torch::nn::Linear(hidden_size, hidden_size));
  proj = register_module("proj", torch::nn::Linear(hidden_size, hidden_size));
}

at::Tensor PoolingAttentionImpl::forward(const at::Tensor& x) {
  at::Tensor mean = x.mean(1, /*keepdim=*/true);                                       // [B, 1, D]
  return at::linear(at::linear(mean, v->weight, v->bias), proj->weight, proj->bias);  // [B, 1, D]
}

PoolingformerBlockImpl::PoolingformerBlockImpl(int hidden_size, int mlp_hidden) {
  attn = register_module("attn", PoolingAttention(hidden_size));
  mlp = register_module("mlp", Mlp(hidden_size, mlp_hidden));
  adaLN_modulation = register_module("adaLN_modulation", adaln_head(hidden_size, 6));
}

at::Tensor PoolingformerBlockImpl::forward(const at::Tensor& x, const at::Tensor& c) {
  std::vector<at::Tensor> mod = adaLN_modulation->forward(c).chunk(6, 1);         // 6 x [B, D]
  at::Tensor a = attn->forward(cuda::layer_norm_modulate(x, mod[0], mod[1]));    // [B, 1, D]
  return attention_residual_then_mlp(x, a, mod, mlp);                            // [B, N, D]
}

}  // namespace ditgen::nn
