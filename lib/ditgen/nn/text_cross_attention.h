// Text cross-attention (docs/TEXT.md): image tokens attend to a prompt's token states, as PixArt-alpha and
// the released PT-DiT block do it (no norm, no gate), with the output projection zero-initialised so a
// block starts as its class-conditional self. Every backbone's blocks call add_text_attention between their
// token mixing and their MLP; its cost is O(tokens x prompt length), so attention-free blocks stay linear.
#pragma once

#include <ATen/ATen.h>

#include "ditgen/nn/attention.h"

namespace ditgen::nn {

// A prompt's token states as the backbone sees them (already projected to its width).
struct TextTokens {
  at::Tensor states;  // [B, L, D]
  at::Tensor mask;    // [B, L] bool: true for real tokens (the start token always is), false for padding

  bool defined() const { return states.defined(); }
};

// x + attn(Q = x, KV = text states, padding masked); x unchanged when the block has no text attention or
// there is no text. [B, N, D] -> [B, N, D]
at::Tensor add_text_attention(CrossAttention attn, const at::Tensor& x, const TextTokens& text);

// The block member for a model with text (registered as "text_cross", output projection zeroed), else an
// empty holder.
CrossAttention make_text_attention(torch::nn::Module& block, bool with_text, int hidden_size, int num_heads);

}  // namespace ditgen::nn
