// The DiT (Peebles & Xie) as the official code computes it, with its parameter names; with a flexible
// tokenizer (FlexiDiT), a sparse layout (SparseDiT), proxy-token blocks (PT-DiT) or gated bidirectional SSM
// blocks (DiffuSSM) when the config asks for them.
#pragma once

#include <map>
#include <utility>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>

#include "ditgen/models/config.h"
#include "ditgen/nn/diffussm_block.h"
#include "ditgen/nn/dit_block.h"
#include "ditgen/nn/embeddings.h"
#include "ditgen/nn/flexible_tokenizer.h"
#include "ditgen/nn/lora.h"
#include "ditgen/nn/poolingformer.h"
#include "ditgen/nn/proxy_attention.h"
#include "ditgen/nn/sparse_dense_module.h"
#include "ditgen/text/text_encoder.h"

namespace ditgen {

class DiTImpl : public torch::nn::Module {
 public:
  explicit DiTImpl(const DiTConfig& config);

  // Noise (or velocity) prediction: x [B, C, H, W] with H, W multiples of the patch, or a clip [B, C, F, H, W]
  // (dense and PT-DiT models; nn/video_tokens.h); t [B] timesteps
  // (integer or fractional); y the condition: [B] class ids, num_classes being the null class, or for a text
  // model [B, max_tokens] token ids (text::Tokenizer; the start id alone is the null condition); `patch` the patch size to
  // run at (0 = config().patch_size; a flexible model runs any of config().flex.patch_sizes); `grid` the
  // sparse grid S of a sparse model's modules (0 = config().sparse.max_grid; at most the token grid).
  // -> [B, Cout, H, W] (a clip: [B, Cout, F, H, W]). Runs forward_fused on CUDA in inference (unless fused kernels are disabled), else
  // forward_reference.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y, int patch = 0, int grid = 0);
  // Block by block, as the official code computes it (training and CPU use this).
  at::Tensor forward_reference(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y, int patch = 0,
                               int grid = 0);
  // The same function with the adaLN steps fused across the top blocks' boundaries, SiLU(c) computed once
  // and GELU in the MLP's GEMM epilogue. Off CUDA each fused op falls back to its reference. No autograd.
  at::Tensor forward_fused(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y, int patch = 0,
                           int grid = 0);

  // A flexible ("lora" mode) model's per-patch adapters: kept unmerged (extra low-rank FLOPs), or merged
  // into one weight copy per patch size (extra memory). Call after moving the model to its device/dtype.
  void set_lora_merged(bool merged);
  bool lora_merged() const { return lora_merged_; }

  // The official initialisation (xavier linears, N(0, 0.02) embeddings, zeroed adaLN and output layers).
  void initialize_weights();
  // Every parameter ~ N(0, std) drawn on the CPU from `seed`: random weights for benchmarks and parity runs,
  // where the official zeros would make the adaLN and output layers trivial.
  void normal_weights(double std, uint64_t seed);

  const DiTConfig& config() const { return config_; }
  // The base tokenizer layers (x_embedder.proj, final_layer.linear) as views of the parameters: the patch
  // size's own in a fixed-patch or lora-mode model, the underlying p' x p' ones in a shared flexible model.
  nn::FlexibleTokenizerImpl::Weights base_tokenizer() const;

  nn::PatchEmbed x_embedder{nullptr};
  nn::TimestepEmbedder t_embedder{nullptr};
  nn::LabelEmbedder y_embedder{nullptr};            // class-conditional models
  text::TextEncoder text_encoder{nullptr};         // text models
  torch::nn::ModuleList pooling_blocks{nullptr};  // sparse models: Poolingformer blocks
  torch::nn::ModuleList sparse_modules{nullptr};  // sparse models: sparse-dense token modules
  torch::nn::ModuleList proxy_blocks{nullptr};    // PT-DiT: proxy-token blocks (then there are no dense blocks)
  torch::nn::Sequential adaLN_modulation{nullptr};  // PT-DiT: the shared adaLN-single head, SiLU, Linear(D -> 9D)
  torch::nn::ModuleList ssm_blocks{nullptr};      // DiffuSSM: gated bidirectional SSM blocks (no dense blocks)
  torch::nn::ModuleList blocks{nullptr};          // the dense blocks (a sparse model's top blocks)
  nn::FinalLayer final_layer{nullptr};
  nn::FlexibleTokenizer flex{nullptr};  // flexible models only
  // Video models: [D], multiplies the temporal positions (learned; starts at 1).
  at::Tensor temporal_pos_gate;

 private:
  struct Embedded {
    at::Tensor tokens;     // [B, N, D] patch embeddings plus positions
    at::Tensor condition;  // [B, D] timestep plus label embedding (or pooled text)
    nn::TextTokens text;   // [B, L, D] the prompt's states (text models)
    at::Tensor deembed_weight, deembed_bias;  // the output projection for this patch size
    int grid_h = 0, grid_w = 0, patch = 0;
    int frames = 1;      // a clip's frames (1 for an image)
    bool clip = false;   // the input was [B, C, F, H, W]
    int sparse_grid = 0;  // S of the sparse modules (sparse models)
  };
  // Also selects the patch size's LoRA adapters (lora mode).
  Embedded embed(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y, int patch, int grid);
  // A sparse model's Poolingformer blocks and modules (none for a dense model). [B, N, D] -> [B, N, D]
  at::Tensor sparse_stages(const at::Tensor& h, const Embedded& e);
  // A PT-DiT's blocks, in window-major token order inside (none for other models). [B, N, D] -> [B, N, D]
  at::Tensor proxy_stages(const at::Tensor& h, const Embedded& e);
  // A DiffuSSM's blocks on the raster-ordered tokens (none for other models). [B, N, D] -> [B, N, D]
  at::Tensor ssm_stages(const at::Tensor& h, const Embedded& e);
  // Every block before the dense ones: sparse, proxy-token or SSM stages. [B, N, D] -> [B, N, D]
  at::Tensor leading_stages(const at::Tensor& h, const Embedded& e);
  // The window orders of a token grid on a device, built once per grid and device.
  const nn::WindowLayout& window_layout(const nn::WindowGrid& g, const c10::Device& device);
  // Image positions, plus (a clip) the temporal ones times temporal_pos_gate. [1, F * h * w, D]
  at::Tensor pos_embed(int frames, int grid_h, int grid_w, int patch, const at::TensorOptions& options);
  at::Tensor unpatchify(const at::Tensor& x, const Embedded& e) const;  // [B, N, p*p*C] -> [B, C, (F,) H, W]

  DiTConfig config_;
  struct Positions {
    at::Tensor image, time;  // [1, F * h * w, D] each; time undefined for an image
  };
  std::map<std::tuple<int, int, int, int>, Positions> pos_cache_;
  std::map<std::tuple<int64_t, int64_t, int64_t, std::string>, nn::WindowLayout> layout_cache_;
  std::vector<nn::LoRALinear> adapted_;  // lora mode: the linears carrying one adapter per patch size
  bool lora_merged_ = false;
};
TORCH_MODULE(DiT);

// The windows of a PT-DiT token grid of frames x grid_h x grid_w: config.proxy.windows per side, each
// config.window_frames(frames) frames long.
nn::WindowGrid proxy_window_grid(const DiTConfig& config, int64_t frames, int64_t grid_h, int64_t grid_w);

}  // namespace ditgen
