#include "ditgen/nn/dit_block.h"

#include <torch/nn/modules/activation.h>

namespace ditgen::nn {

at::Tensor modulate(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale) {
  return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1);  // [B, N, D]
}

at::Tensor layer_norm_plain(const at::Tensor& x) {
  return at::layer_norm(x, {x.size(-1)}, {}, {}, 1e-6);
}

DiTBlockImpl::DiTBlockImpl(int hidden_size, int num_heads, int mlp_hidden) {
  attn = register_module("attn", Attention(hidden_size, num_heads));
  mlp = register_module("mlp", Mlp(hidden_size, mlp_hidden));
  adaLN_modulation = register_module(
      "adaLN_modulation", torch::nn::Sequential(torch::nn::SiLU(), torch::nn::Linear(hidden_size, 6 * hidden_size)));
}

at::Tensor DiTBlockImpl::forward(const at::Tensor& x, const at::Tensor& c) {
  auto mod = adaLN_modulation->forward(c).chunk(6, 1);  // 6 x [B, D]
  const at::Tensor &shift_msa = mod[0], &scale_msa = mod[1], &gate_msa = mod[2];
  const at::Tensor &shift_mlp = mod[3], &scale_mlp = mod[4], &gate_mlp = mod[5];
  at::Tensor h = x + gate_msa.unsqueeze(1) * attn->forward(modulate(layer_norm_plain(x), shift_msa, scale_msa));
  return h + gate_mlp.unsqueeze(1) * mlp->forward(modulate(layer_norm_plain(h), shift_mlp, scale_mlp));  // [B,N,D]
}

FinalLayerImpl::FinalLayerImpl(int hidden_size, int patch_size, int out_channels) {
  linear = register_module("linear", torch::nn::Linear(hidden_size, patch_size * patch_size * out_channels));
  adaLN_modulation = register_module(
      "adaLN_modulation", torch::nn::Sequential(torch::nn::SiLU(), torch::nn::Linear(hidden_size, 2 * hidden_size)));
}

at::Tensor FinalLayerImpl::forward(const at::Tensor& x, const at::Tensor& c) {
  auto mod = adaLN_modulation->forward(c).chunk(2, 1);               // 2 x [B, D]
  return linear->forward(modulate(layer_norm_plain(x), mod[0], mod[1]));  // [B, N, p*p*Cout]
}

}  // namespace ditgen::nn
