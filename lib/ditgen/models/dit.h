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
  // Runs forward_fused on CUDA in inference (unless fused kernels are disabled), else forward_reference.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y);
  // Block by block, as the official code computes it (training and CPU use this).
  at::Tensor forward_reference(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y);
  // The same function with the adaLN steps fused across block boundaries, SiLU(c) computed once and GELU in
  // the MLP's GEMM epilogue. Off CUDA each fused op falls back to its reference. No autograd.
  at::Tensor forward_fused(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y);

  // The official initialisation (xavier linears, N(0, 0.02) embeddings, zeroed adaLN and output layers).
  void initialize_weights();
  // Every parameter ~ N(0, std) drawn on the CPU from `seed`: random weights for benchmarks and parity runs,
  // where the official zeros would make the adaLN and output layers trivial.
  void normal_weights(double std, uint64_t seed);

  const DiTConfig& config() const { return config_; }

  nn::PatchEmbed x_embedder{nullptr};
  nn::TimestepEmbedder t_embedder{nullptr};
  nn::LabelEmbedder y_embedder{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  nn::FinalLayer final_layer{nullptr};

 private:
  struct Embedded {
    at::Tensor tokens;     // [B, N, D] patch embeddings plus positions
    at::Tensor condition;  // [B, D] timestep plus label embedding
    int grid_h = 0, grid_w = 0;
  };
  Embedded embed(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y);
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
