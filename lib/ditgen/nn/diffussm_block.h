// DiffuSSM's block (docs/DIFFUSSM.md): a gated bidirectional S4D layer in the BiGS form wrapped in an
// hourglass of dense layers, with no attention. The dense layers run on the sequence packed M tokens to one
// (length J = L / M); the SSMs run at the full length L.
#pragma once

#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include "ditgen/nn/lora.h"
#include "ditgen/nn/s4d.h"
#include "ditgen/nn/text_cross_attention.h"

namespace ditgen::nn {

// Per block, with h = modulate(LN(x), shift, scale) packed to I = [B, J, M D] (tokens jM .. jM + M - 1):
//   U  = GELU(expand(GELU(compress(I))))            -> [B, L, D]  (W^0: M D -> D; W^up: D -> M D, unpacked)
//   Y  = [S4D_fwd(U) || flip(S4D_bwd(flip(U)))]      -> [B, L, 2D] (the bidirectional SSM)
//   I' = GELU(contract(Y packed))                    -> [B, J, D]  (W^down: 2 M D -> D)
//   O  = out(GELU(mix(I')) * GELU(gate(I)))          -> [B, J, M D] (W^2: D -> F, W^1: M D -> F, W^3: F -> M D)
//   x  = x + g * O unpacked                           (adaLN-Zero: shift, scale, gate from the condition)
//   x  = x + CA(Q = x, KV = text)                     (text models: O(L x prompt length), no attention over x)
// The six dense layers are LoRALinears, so they take adapters and quantize like attention and MLP projections.
class DiffuSSMBlockImpl : public torch::nn::Module {
 public:
  // hidden D, hourglass ratio M, gate width F, S4D state N, shared_kernel: one SSM kernel for all channels;
  // text_heads > 0: text cross-attention with that many heads (text models).
  DiffuSSMBlockImpl(int hidden_size, int hourglass, int gate_hidden, int state_size, bool shared_kernel,
                    int text_heads = 0);
  // x [B, L, D] with L a multiple of M, c [B, D], text [B, T, D] -> [B, L, D]
  at::Tensor forward(const at::Tensor& x, const at::Tensor& c, const TextTokens& text = {});
  // The bidirectional SSM: forward S4D, then flip -> backward S4D -> flip. u [B, L, D] -> [B, L, 2D]
  at::Tensor bidirectional_ssm(const at::Tensor& u);

  LoRALinear compress{nullptr};        // W^0
  LoRALinear expand{nullptr};          // W^up
  S4D ssm_forward{nullptr};
  S4D ssm_backward{nullptr};
  LoRALinear contract{nullptr};        // W^down
  LoRALinear gate{nullptr};            // W^1, on the block's input
  LoRALinear mix{nullptr};             // W^2, on the SSM's output
  LoRALinear out{nullptr};             // W^3
  CrossAttention text_cross{nullptr};  // text models only
  torch::nn::Sequential adaLN_modulation{nullptr};  // SiLU, Linear(D -> 3D)

 private:
  int hourglass_;
};
TORCH_MODULE(DiffuSSMBlock);

}  // namespace ditgen::nn
