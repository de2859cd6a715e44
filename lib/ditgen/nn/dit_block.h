// The dense DiT block with adaLN-Zero conditioning, and the final (de-embedding) layer.
#pragma once

#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>

#include "ditgen/nn/attention.h"
#include "ditgen/nn/mlp.h"
#include "ditgen/nn/text_cross_attention.h"

namespace ditgen::nn {

// x * (1 + scale) + shift, with per-sample shift/scale broadcast over tokens.
at::Tensor modulate(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale);  // [B,N,D],[B,D],[B,D]
// LayerNorm over the last dim without affine parameters (eps 1e-6), as every DiT norm.
at::Tensor layer_norm_plain(const at::Tensor& x);

// The adaLN head of a block: SiLU, then Linear(D -> n D) giving n modulation vectors.
torch::nn::Sequential adaln_head(int hidden_size, int n);
// x + gate a (a may be [B, 1, D]), then the text attention (when text_cross and text are given), and the
// next layer's input: the stream and its norm modulated by shift and scale. [B, N, D] -> [B, N, D] x2
std::pair<at::Tensor, at::Tensor> gated_residual_text_norm(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& a,
                                                           const at::Tensor& shift, const at::Tensor& scale,
                                                           const CrossAttention& text_cross, const TextTokens& text);
// modulate(LayerNorm(x)) for `consumer`: quantized in the adaLN kernel when it takes quantized tokens, else
// (or with no consumer: nullptr) float. [B, N, D] -> [B, N, D]
LinearInput layer_norm_modulate_for(const LoRALinear* consumer, const at::Tensor& x, const at::Tensor& shift,
                                    const at::Tensor& scale);
// The second half of every adaLN-Zero block: x + gate_msa a, then the text attention (text models), then
// + gate_mlp MLP(modulate(LN(.))), with mod the block's six vectors (shift, scale, gate for attention, then
// for the MLP). a may be [B, 1, D] (broadcast over tokens). x [B, N, D] -> [B, N, D]
at::Tensor attention_residual_then_mlp(const at::Tensor& x, const at::Tensor& a, const std::vector<at::Tensor>& mod,
                                       Mlp& mlp, const CrossAttention& text_cross = nullptr,
                                       const TextTokens& text = {});

class DiTBlockImpl : public torch::nn::Module {
 public:
  // with_text: the block attends to a prompt's tokens after its self-attention (text models).
  DiTBlockImpl(int hidden_size, int num_heads, int mlp_hidden, bool with_text = false);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& c,
                     const TextTokens& text = {});  // [B, N, D], [B, D], [B, L, D] -> [B, N, D]

  // The six adaLN vectors (shift, scale, gate for attention, then for the MLP) from SiLU(c), which the
  // fused path computes once for all blocks. [B, D] -> 6 x [B, D]
  std::vector<at::Tensor> modulation(const at::Tensor& silu_c);
  // The fused inference form, chained across blocks so each residual step and the next norm share one
  // kernel: x is the residual stream, x_mod = modulate(LayerNorm(x)) with this block's attention shift and
  // scale, mod = modulation(...). Returns the new stream and its norm modulated by next_shift/next_scale
  // (the next block's attention pair, or the final layer's). Same function as forward().
  // The norms go to the projections after them quantized by the adaLN kernel where those are integer layers
  // (LoRALinear::takes_quantized_tokens): this block's fc1, and `next_consumer` (the next block's qkv; nullptr
  // for the final layer, which takes floats).
  std::pair<at::Tensor, LinearInput> forward_chained(const at::Tensor& x, const LinearInput& x_mod,
                                                     const std::vector<at::Tensor>& mod, const at::Tensor& next_shift,
                                                     const at::Tensor& next_scale, const TextTokens& text = {},
                                                     const LoRALinear* next_consumer = nullptr);

  Attention attn{nullptr};
  CrossAttention text_cross{nullptr};  // text models only
  Mlp mlp{nullptr};
  torch::nn::Sequential adaLN_modulation{nullptr};  // SiLU, Linear(D -> 6D)
};
TORCH_MODULE(DiTBlock);

class FinalLayerImpl : public torch::nn::Module {
 public:
  FinalLayerImpl(int hidden_size, int patch_size, int out_channels);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& c);  // [B, N, D], [B, D] -> [B, N, p*p*Cout]
  // The same with another output projection (a flexible model's weights for its patch size).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& c, const at::Tensor& weight, const at::Tensor& bias);
  // Shift and scale from SiLU(c) (the fused path). [B, D] -> 2 x [B, D]
  std::vector<at::Tensor> modulation(const at::Tensor& silu_c);

  torch::nn::Linear linear{nullptr};
  torch::nn::Sequential adaLN_modulation{nullptr};  // SiLU, Linear(D -> 2D)
};
TORCH_MODULE(FinalLayer);

}  // namespace ditgen::nn
