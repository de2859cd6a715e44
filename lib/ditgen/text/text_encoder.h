// The text encoder of text models (docs/TEXT.md): token and learned position embeddings, pre-norm
// transformer layers with padding masked, a final LayerNorm; its states projected to the backbone's width
// for cross-attention, and their mean over the real tokens projected into the adaLN condition. Trained with
// the backbone; its weights live in the model file beside the backbone's ("text_encoder.*").
#pragma once

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include "ditgen/models/config.h"
#include "ditgen/nn/mlp.h"
#include "ditgen/nn/text_cross_attention.h"

namespace ditgen::text {

// What a prompt gives the backbone.
struct TextCondition {
  nn::TextTokens tokens;  // states [B, L, D] for cross-attention, mask [B, L]
  at::Tensor pooled;      // [B, D], added to the timestep embedding
};

// x + SA(LN(x)) with padding keys masked, then x + MLP(LN(x)).
class TextEncoderLayerImpl : public torch::nn::Module {
 public:
  TextEncoderLayerImpl(int width, int heads);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& mask);  // [B, L, W], [B, L] bool -> [B, L, W]

  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  torch::nn::Linear qkv{nullptr}, proj{nullptr};
  nn::Mlp mlp{nullptr};

 private:
  int heads_;
};
TORCH_MODULE(TextEncoderLayer);

class TextEncoderImpl : public torch::nn::Module {
 public:
  TextEncoderImpl(const TextConfig& config, int hidden_size);
  // ids [B, L] int64 (L = max_tokens; start id first, padding after the words, as the Tokenizer makes them:
  // values are not checked here, where a check would stall a captured CUDA graph) -> the backbone's condition.
  TextCondition forward(const at::Tensor& ids);

  torch::nn::Embedding token_embedding{nullptr};  // [V, W]
  at::Tensor positions;                           // [L, W]
  torch::nn::ModuleList layers{nullptr};
  torch::nn::LayerNorm norm{nullptr};
  torch::nn::Linear context_proj{nullptr};  // W -> D, the states cross-attention reads
  torch::nn::Linear pooled_proj{nullptr};   // W -> D, into the adaLN condition

 private:
  TextConfig config_;
};
TORCH_MODULE(TextEncoder);

}  // namespace ditgen::text
