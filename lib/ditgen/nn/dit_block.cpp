#include "ditgen/nn/dit_block.h"

#include <torch/nn/modules/activation.h>

#include "ditgen/cuda/adaln.h"

namespace ditgen::nn {

at::Tensor modulate(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale) {
  return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1);  // [B, N, D]
}

at::Tensor layer_norm_plain(const at::Tensor& x) {
  return at::layer_norm(x, {x.size(-1)}, {}, {}, 1e-6);
}

DiTBlockImpl::DiTBlockImpl(int hidden_size, int num_heads, int mlp_hidden, bool with_text) {
  attn = register_module("attn", Attention(hidden_size, num_heads));
  text_cross = make_text_attention(*this, with_text, hidden_size, num_heads);
  mlp = register_module("mlp", Mlp(hidden_size, mlp_hidden));
  adaLN_modulation = register_module("adaLN_modulation", adaln_head(hidden_size, 6));
}

torch::nn::Sequential adaln_head(int hidden_size, int n) {
  return torch::nn::Sequential(torch::nn::SiLU(), torch::nn::Linear(hidden_size, n * hidden_size));
}

namespace {
// The Linear of a (SiLU, Linear) adaLN head applied to an already activated condition, split in n.
std::vector<at::Tensor> adaln_chunks(torch::nn::Sequential& head, const at::Tensor& silu_c, int64_t n) {
  auto* lin = head[1]->as<torch::nn::Linear>();
  return at::linear(silu_c, lin->weight, lin->bias).chunk(n, 1);  // n x [B, D]
}
}  // namespace

namespace {
bool takes_quantized(const LoRALinear* consumer) { return consumer && (*consumer)->takes_quantized_tokens(); }

// x + gate * branch and the norm after it, handed to `consumer` (layer_norm_modulate_for's rule).
std::pair<at::Tensor, LinearInput> gated_residual_norm_for(const LoRALinear* consumer, const at::Tensor& x,
                                                           const at::Tensor& gate, const at::Tensor& branch,
                                                           const at::Tensor& shift, const at::Tensor& scale) {
  if (takes_quantized(consumer)) {
    auto [h, q] = cuda::gated_residual_layer_norm_modulate_quantized(x, gate, branch, shift, scale);  // [B, N, D] x2
    return {h, LinearInput{at::Tensor(), q, x.scalar_type()}};
  }
  auto [h, h_mod] = cuda::gated_residual_layer_norm_modulate(x, gate, branch, shift, scale);  // [B, N, D] x2
  return {h, LinearInput{h_mod}};
}

// gated_residual_text_norm with the norm handed to `consumer`.
std::pair<at::Tensor, LinearInput> gated_residual_text_norm_for(const LoRALinear* consumer, const at::Tensor& x,
                                                                const at::Tensor& gate, const at::Tensor& a,
                                                                const at::Tensor& shift, const at::Tensor& scale,
                                                                const CrossAttention& text_cross,
                                                                const TextTokens& text) {
  // The fused kernels (CUDA inference) or their references; the kernel takes a branch of x's shape only.
  const at::Tensor branch = a.sizes() == x.sizes() ? a : a.expand_as(x).contiguous();             // [B, N, D]
  if (text_cross.is_empty() || !text.defined()) return gated_residual_norm_for(consumer, x, gate, branch, shift, scale);
  const at::Tensor h = add_text_attention(text_cross, cuda::gated_residual(x, gate, branch), text);  // [B, N, D]
  return {h, layer_norm_modulate_for(consumer, h, shift, scale)};                                   // [B, N, D] x2
}
}  // namespace

std::pair<at::Tensor, at::Tensor> gated_residual_text_norm(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& a,
                                                           const at::Tensor& shift, const at::Tensor& scale,
                                                           const CrossAttention& text_cross, const TextTokens& text) {
  auto [h, h_mod] = gated_residual_text_norm_for(nullptr, x, gate, a, shift, scale, text_cross, text);  // [B, N, D] x2
  return {h, h_mod.values};
}

LinearInput layer_norm_modulate_for(const LoRALinear* consumer, const at::Tensor& x, const at::Tensor& shift,
                                    const at::Tensor& scale) {
  if (takes_quantized(consumer))
    return {at::Tensor(), cuda::layer_norm_modulate_quantized(x, shift, scale), x.scalar_type()};  // [B, N, D]
  return {cuda::layer_norm_modulate(x, shift, scale)};                                                // [B, N, D]
}

at::Tensor attention_residual_then_mlp(const at::Tensor& x, const at::Tensor& a, const std::vector<at::Tensor>& mod,
                                       Mlp& mlp, const CrossAttention& text_cross, const TextTokens& text) {
  auto [h, h_mod] = gated_residual_text_norm(x, mod[2], a, mod[3], mod[4], text_cross, text);  // [B, N, D] x2
  return cuda::gated_residual(h, mod[5], mlp->forward(h_mod));                           // [B, N, D]
}

at::Tensor DiTBlockImpl::forward(const at::Tensor& x, const at::Tensor& c, const TextTokens& text) {
  std::vector<at::Tensor> mod = adaLN_modulation->forward(c).chunk(6, 1);  // 6 x [B, D]
  at::Tensor a = attn->forward(cuda::layer_norm_modulate(x, mod[0], mod[1]));  // [B, N, D]
  return attention_residual_then_mlp(x, a, mod, mlp, text_cross, text);        // [B, N, D]
}

std::vector<at::Tensor> DiTBlockImpl::modulation(const at::Tensor& silu_c) {
  return adaln_chunks(adaLN_modulation, silu_c, 6);
}

std::pair<at::Tensor, LinearInput> DiTBlockImpl::forward_chained(const at::Tensor& x, const LinearInput& x_mod,
                                                                 const std::vector<at::Tensor>& mod,
                                                                 const at::Tensor& next_shift,
                                                                 const at::Tensor& next_scale, const TextTokens& text,
                                                                 const LoRALinear* next_consumer) {
  at::Tensor a = attn->forward_input(x_mod);                                                            // [B, N, D]
  auto [h, h_mod] = gated_residual_text_norm_for(&mlp->fc1, x, mod[2], a, mod[3], mod[4], text_cross, text);  // [B, N, D] x2
  at::Tensor m = mlp->forward_input(h_mod);                                                              // [B, N, D]
  return gated_residual_norm_for(next_consumer, h, mod[5], m, next_shift, next_scale);                   // [B, N, D] x2
}

FinalLayerImpl::FinalLayerImpl(int hidden_size, int patch_size, int out_channels) {
  linear = register_module("linear", torch::nn::Linear(hidden_size, patch_size * patch_size * out_channels));
  adaLN_modulation = register_module("adaLN_modulation", adaln_head(hidden_size, 2));
}

at::Tensor FinalLayerImpl::forward(const at::Tensor& x, const at::Tensor& c) {
  return forward(x, c, linear->weight, linear->bias);
}

at::Tensor FinalLayerImpl::forward(const at::Tensor& x, const at::Tensor& c, const at::Tensor& weight,
                                   const at::Tensor& bias) {
  auto mod = adaLN_modulation->forward(c).chunk(2, 1);                            // 2 x [B, D]
  return at::linear(modulate(layer_norm_plain(x), mod[0], mod[1]), weight, bias);  // [B, N, p*p*Cout]
}

std::vector<at::Tensor> FinalLayerImpl::modulation(const at::Tensor& silu_c) {
  return adaln_chunks(adaLN_modulation, silu_c, 2);
}

}  // namespace ditgen::nn
