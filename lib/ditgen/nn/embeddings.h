// Token and condition embeddings of the DiT: patches, fixed 2D sin-cos positions, timesteps, class labels.
#pragma once

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/embedding.h>

namespace ditgen::nn {

// Tokens of x for a patch-p kernel: conv with kernel = stride = p, flattened row-major.
at::Tensor patchify(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);  // -> [B, N, D]

// Conv with kernel = stride = patch, flattened to tokens in row-major grid order (timm's PatchEmbed).
class PatchEmbedImpl : public torch::nn::Module {
 public:
  PatchEmbedImpl(int in_channels, int hidden_size, int patch_size);
  at::Tensor forward(const at::Tensor& x);  // [B, C, H, W] -> [B, (H/p)(W/p), D]

  torch::nn::Conv2d proj{nullptr};
};
TORCH_MODULE(PatchEmbed);

// Sinusoidal frequency features of the (possibly fractional) timestep, then a 2-layer MLP.
class TimestepEmbedderImpl : public torch::nn::Module {
 public:
  explicit TimestepEmbedderImpl(int hidden_size, int frequency_size = 256);
  at::Tensor forward(const at::Tensor& t);  // [B] -> [B, D]

  torch::nn::Sequential mlp{nullptr};

 private:
  int frequency_size_;
};
TORCH_MODULE(TimestepEmbedder);

// [cos, sin] features of t as the official DiT computes them (float32, max period 10000).
at::Tensor timestep_frequencies(const at::Tensor& t, int dim);  // [B] -> [B, dim]

// A table lookup; row num_classes is the null condition for classifier-free guidance.
class LabelEmbedderImpl : public torch::nn::Module {
 public:
  LabelEmbedderImpl(int num_classes, int hidden_size, bool with_null_class);
  at::Tensor forward(const at::Tensor& labels);  // [B] int64 -> [B, D]

  torch::nn::Embedding embedding_table{nullptr};
};
TORCH_MODULE(LabelEmbedder);

// Fixed 2D sin-cos positions for a gh x gw token grid: the first D/2 channels encode the column, the
// last D/2 the row (the official layout), computed in float64 as the reference does. -> [1, gh*gw, D]
// `step` > 1 places tokens of a coarser grid at their patch centres in fine-grid units (FlexiDiT: token i
// of a patch twice as large sits at 2i + 0.5); step 1 is the official grid.
at::Tensor sincos_pos_embed_2d(int dim, int grid_h, int grid_w, double step = 1.0);

}  // namespace ditgen::nn
