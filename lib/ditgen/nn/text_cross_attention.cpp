#include "ditgen/nn/text_cross_attention.h"

#include <torch/csrc/autograd/grad_mode.h>

namespace ditgen::nn {

at::Tensor add_text_attention(CrossAttention attn, const at::Tensor& x, const TextTokens& text) {
  if (attn.is_empty() || !text.defined()) return x;
  return x + attn->forward(x, text.states, text.mask);  // [B, N, D]
}

CrossAttention make_text_attention(torch::nn::Module& block, bool with_text, int hidden_size, int num_heads) {
  if (!with_text) return CrossAttention{nullptr};
  CrossAttention attn = block.register_module("text_cross", CrossAttention(hidden_size, num_heads));
  torch::NoGradGuard no_grad;
  attn->proj->weight.zero_();  // the block starts as its class-conditional self
  attn->proj->bias.zero_();
  return attn;
}

}  // namespace ditgen::nn
