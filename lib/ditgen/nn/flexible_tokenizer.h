// FlexiDiT's flexible tokenizer (Anagnostidis et al. 2025; docs/FLEXIDIT.md): one backbone embeds and
// de-embeds patches of several sizes. Weights for patch p come from underlying p' x p' weights through the
// pseudo-inverse of the bilinear resize (PI-resize, as FlexiViT), applied per channel.
#pragma once

#include <map>
#include <string>
#include <tuple>

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include "ditgen/models/config.h"

namespace ditgen::nn {

// The linear map of torch's bilinear resize (align_corners=False, no antialias) from a from x from patch
// to a to x to patch, row-major pixels: [to*to, from*from], float64 CPU.
at::Tensor bilinear_resize_matrix(int from, int to);
// Q_embed(p) = pinv(B_{p<-p'}^T), [p*p, p'*p']: maps underlying embedding kernels to patch p.
at::Tensor embed_projection(int patch, int underlying);
// Q_de(p)^T = pinv(B_{p'<-p}), [p*p, p'*p']: maps underlying de-embedding rows to patch p.
at::Tensor deembed_projection(int patch, int underlying);

// Applies m [q*q, a*a] to every channel of a conv kernel: [D, C, a, a] -> [D, C, q, q].
at::Tensor project_kernel(const at::Tensor& kernel, const at::Tensor& m);
// Applies m [q*q, a*a] to de-embedding rows ordered (row, column, channel) as DiT's unpatchify reads them:
// [a*a*C, ...] -> [q*q*C, ...] (a weight [a*a*C, D] or a bias [a*a*C]).
at::Tensor project_rows(const at::Tensor& rows, const at::Tensor& m, int channels);

// The patch-size-dependent parts of a flexible DiT. The model's own x_embedder.proj and final_layer.linear
// are the base layers: in "shared" mode they hold the underlying p' weights that every size is projected
// from; in "lora" mode they keep the pre-trained patch's weights and each other size has its own
// (embed_p{P}_weight, ..., registered here). A learned patch-size embedding is added to every token
// (in "lora" mode the pre-trained patch has none, so its forward stays exactly the original).
class FlexibleTokenizerImpl : public torch::nn::Module {
 public:
  explicit FlexibleTokenizerImpl(const DiTConfig& config);

  struct Weights {
    at::Tensor embed_weight;    // [D, C, p, p]
    at::Tensor embed_bias;      // [D]
    at::Tensor deembed_weight;  // [p*p*Cout, D]
    at::Tensor deembed_bias;    // [p*p*Cout]
  };
  // The patch-p weights, given the base layers' (x_embedder.proj, final_layer.linear).
  Weights weights(int patch, const Weights& base);
  // [D] embedding of patch size p, or undefined where there is none.
  at::Tensor patch_embedding(int patch);

  // Takes a fixed-patch model's layers (`fixed`, at config.patch_size) and sets the base layers (`base`,
  // written in place) and this tokenizer so that the model computes the same function at that patch size
  // and PI-resized versions of it at the others; the patch-size embeddings start at zero.
  void init_from_fixed(const Weights& fixed, Weights& base);

  at::Tensor patch_size_embed;  // [number of embedded sizes, D]

 private:
  // The projection matrix of a kind ("embed" / "deembed") and patch, on the device and dtype of `like`;
  // cached, so no host-to-device copy happens per forward (CUDA graphs capture the forward).
  const at::Tensor& projection(const std::string& kind, int patch, const at::Tensor& like);
  Weights& own(int patch);

  DiTConfig config_;
  std::map<int, int> embed_index_;  // patch size -> row of patch_size_embed
  std::map<int, Weights> own_;      // lora mode: each non-pre-trained size's tokenizer
  std::map<std::tuple<std::string, int, std::string>, at::Tensor> projections_;
};
TORCH_MODULE(FlexibleTokenizer);

}  // namespace ditgen::nn
