#include "ditgen/text/text_encoder.h"

#include <optional>

#include "ditgen/nn/attention.h"
#include "ditgen/text/tokenizer.h"

namespace ditgen::text {

TextEncoderLayerImpl::TextEncoderLayerImpl(int width, int heads) : heads_(heads) {
  norm1 = register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width}).eps(1e-6)));
  qkv = register_module("qkv", torch::nn::Linear(width, 3 * width));
  proj = register_module("proj", torch::nn::Linear(width, width));
  norm2 = register_module("norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width}).eps(1e-6)));
  mlp = register_module("mlp", nn::Mlp(width, 4 * width));
}

at::Tensor TextEncoderLayerImpl::forward(const at::Tensor& x, const at::Tensor& mask) {
  const int64_t B = x.size(0), L = x.size(1);
  const at::Tensor h = nn::split_heads(at::linear(norm1->forward(x), qkv->weight, qkv->bias), heads_);  // [3, B, H, L, hd]
  const std::optional<at::Tensor> keys = mask.view({B, 1, 1, L});                                     // [B, 1, 1, L]
  const at::Tensor a = at::scaled_dot_product_attention(h[0], h[1], h[2], keys);                      // [B, H, L, hd]
  const at::Tensor y = x + at::linear(nn::merge_heads(a), proj->weight, proj->bias);                  // [B, L, W]
  return y + mlp->forward(norm2->forward(y));                                                          // [B, L, W]
}

TextEncoderImpl::TextEncoderImpl(const TextConfig& config, int hidden_size) : config_(config) {
  const int W = config.width;
  token_embedding = register_module("token_embedding", torch::nn::Embedding(config.vocab_size(), W));
  positions = register_parameter("positions", at::zeros({config.max_tokens, W}));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int i = 0; i < config.layers; ++i) layers->push_back(TextEncoderLayer(W, config.heads));
  norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({W}).eps(1e-6)));
  context_proj = register_module("context_proj", torch::nn::Linear(W, hidden_size));
  pooled_proj = register_module("pooled_proj", torch::nn::Linear(W, hidden_size));
}

TextCondition TextEncoderImpl::forward(const at::Tensor& ids) {
  TORCH_CHECK(ids.dim() == 2 && ids.size(1) == config_.max_tokens && ids.scalar_type() == at::kLong,
              "text ids must be [B, ", config_.max_tokens, "] int64, got ", ids.sizes());
  const at::Tensor mask = ids != kPadId;                                                   // [B, L] bool
  at::Tensor x = token_embedding->forward(ids) + positions;                                 // [B, L, W]
  for (const auto& layer : *layers) x = layer->as<TextEncoderLayer>()->forward(x, mask);  // [B, L, W]
  x = norm->forward(x);                                                                    // [B, L, W]
  const at::Tensor weights = mask.to(x.scalar_type()).unsqueeze(2);                        // [B, L, 1]
  const at::Tensor mean = (x * weights).sum(1) / weights.sum(1);                           // [B, W]
  return {{at::linear(x, context_proj->weight, context_proj->bias), mask},                  // [B, L, D]
          at::linear(mean, pooled_proj->weight, pooled_proj->bias)};                        // [B, D]
}

}  // namespace ditgen::text
