// The dense DiT (Peebles & Xie) as the official code computes it, with its parameter names.
#pragma once

#include <map>
#include <utility>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>

#include "ditgen/models/config.h"
#include "ditgen/nn/dit_block.h"
#include "ditgen/nn/embeddings.h"

namespace ditgen {

class DiTImpl : public torch::nn::Module {
 public:
  explicit DiTImpl(const DiTConfig& config);

  // Noise (or velocity) prediction: x [B, C, H, W] with H, W multiples of the patch; t [B] timesteps
  // (integer or fractional); y [B] class ids, num_classes being the null class. -> [B, Cout, H, W]
  at::Tensor forward(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y);

  // The official initialisation (xavier linears, N(0, 0.02) embeddings, zeroed adaLN and output layers).
  void initialize_weights();

  const DiTConfig& config() const { return config_; }

  nn::PatchEmbed x_embedder{nullptr};
  nn::TimestepEmbedder t_embedder{nullptr};
  nn::LabelEmbedder y_embedder{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  nn::FinalLayer final_layer{nullptr};

 private:
  at::Tensor pos_embed(int grid_h, int grid_w, const at::TensorOptions& options);  // [1, N, D], cached
  at::Tensor unpatchify(const at::Tensor& x, int grid_h, int grid_w) const;     // [B, N, p*p*C] -> [B, C, H, W]

  DiTConfig config_;
  std::map<std::pair<int, int>, at::Tensor> pos_cache_;
};
TORCH_MODULE(DiT);

// Multiply-accumulate GFLOPs of one forward pass of one image at height x width (the DiT papers'
// convention: DiT-XL/2 at 32x32 latents = 118.6). Counts every linear layer and the two attention matmuls.
double dit_gflops(const DiTConfig& config, int height, int width);

// Number of parameters of a model with this config.
int64_t dit_parameter_count(const DiTConfig& config);

}  // namespace ditgen
