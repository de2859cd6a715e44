#include "ditgen/nn/diffussm_block.h"

#include "ditgen/cuda/adaln.h"
#include "ditgen/nn/dit_block.h"
#include "ditgen/nn/mlp.h"

namespace ditgen::nn {

DiffuSSMBlockImpl::DiffuSSMBlockImpl(int hidden_size, int hourglass, int gate_hidden, int state_size,
                                     bool shared_kernel, int text_heads)
    : hourglass_(hourglass) {
  const int D = hidden_size, M = hourglass, F = gate_hidden;
  compress = register_module("compress", LoRALinear(M * D, D));
  expand = register_module("expand", LoRALinear(D, M * D));
  ssm_forward = register_module("ssm_forward", S4D(D, state_size, shared_kernel));
  ssm_backward = register_module("ssm_backward", S4D(D, state_size, shared_kernel));
  contract = register_module("contract", LoRALinear(2 * M * D, D));
  gate = register_module("gate", LoRALinear(M * D, F));
  mix = register_module("mix", LoRALinear(D, F));
  out = register_module("out", LoRALinear(F, M * D));
  text_cross = make_text_attention(*this, text_heads > 0, D, text_heads);
  adaLN_modulation = register_module("adaLN_modulation", adaln_head(D, 3));
}

at::Tensor DiffuSSMBlockImpl::bidirectional_ssm(const at::Tensor& u) {
  return bidirectional_s4d(*ssm_forward, *ssm_backward, u);  // [B, L, 2D]
}

at::Tensor DiffuSSMBlockImpl::forward(const at::Tensor& x, const at::Tensor& c, const TextTokens& text) {
  const int64_t B = x.size(0), L = x.size(1), D = x.size(2), J = L / hourglass_;
  TORCH_CHECK(L % hourglass_ == 0, "DiffuSSM: ", L, " tokens do not pack by the hourglass ratio ", hourglass_);
  std::vector<at::Tensor> mod = adaLN_modulation->forward(c).chunk(3, 1);                           // 3 x [B, D]
  const at::Tensor I = cuda::layer_norm_modulate(x, mod[0], mod[1]).reshape({B, J, hourglass_ * D});  // [B, J, M D]
  const at::Tensor z = linear_gelu(*compress, {I});                                                 // [B, J, D]
  const at::Tensor U = linear_gelu(*expand, {z}).reshape({B, L, D});                                // [B, L, D]
  const at::Tensor Y = bidirectional_ssm(U).reshape({B, J, 2 * hourglass_ * D});                   // [B, J, 2 M D]
  const at::Tensor I2 = linear_gelu(*contract, {Y});                                                // [B, J, D]
  const at::Tensor gated = linear_gelu(*mix, {I2}) * linear_gelu(*gate, {I});                       // [B, J, F]
  const at::Tensor O = out->forward(gated).reshape({B, L, D});                                     // [B, L, D]
  return add_text_attention(text_cross, x + mod[2].unsqueeze(1) * O, text);                        // [B, L, D]
}

}  // namespace ditgen::nn
