#include "ditgen/models/dit.h"

#include <tuple>

#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>

#include <torch/nn/init.h>

#include "ditgen/core/error.h"
#include "ditgen/cuda/adaln.h"

namespace ditgen {

DiTImpl::DiTImpl(const DiTConfig& config) : config_(config) {
  config_.validate(ErrorKind::Usage);
  const int D = config_.hidden_size;
  x_embedder = register_module("x_embedder", nn::PatchEmbed(config_.in_channels, D, config_.patch_size));
  t_embedder = register_module("t_embedder", nn::TimestepEmbedder(D));
  y_embedder = register_module("y_embedder", nn::LabelEmbedder(config_.num_classes, D, config_.has_null_class()));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int i = 0; i < config_.depth; ++i) blocks->push_back(nn::DiTBlock(D, config_.num_heads, config_.mlp_hidden()));
  final_layer = register_module("final_layer", nn::FinalLayer(D, config_.patch_size, config_.out_channels()));
}

at::Tensor DiTImpl::pos_embed(int grid_h, int grid_w, const at::TensorOptions& options) {
  at::Tensor& cached = pos_cache_[{grid_h, grid_w}];
  if (!cached.defined() || cached.device() != options.device() || cached.scalar_type() != options.dtype())
    cached = nn::sincos_pos_embed_2d(config_.hidden_size, grid_h, grid_w).to(options);
  return cached;
}

at::Tensor DiTImpl::unpatchify(const at::Tensor& x, int grid_h, int grid_w) const {
  const int64_t B = x.size(0), p = config_.patch_size, C = config_.out_channels();
  return x.reshape({B, grid_h, grid_w, p, p, C})  // [B, h, w, p, q, C]
      .permute({0, 5, 1, 3, 2, 4})                 // [B, C, h, p, w, q]
      .reshape({B, C, grid_h * p, grid_w * p});    // [B, C, H, W]
}

DiTImpl::Embedded DiTImpl::embed(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y) {
  const int p = config_.patch_size;
  TORCH_CHECK(x.dim() == 4 && x.size(1) == config_.in_channels, "DiT expects [B, ", config_.in_channels,
              ", H, W], got ", x.sizes());
  TORCH_CHECK(x.size(2) % p == 0 && x.size(3) % p == 0, "DiT input ", x.sizes(), " is not divisible by patch ", p);
  Embedded e;
  e.grid_h = static_cast<int>(x.size(2)) / p;
  e.grid_w = static_cast<int>(x.size(3)) / p;
  e.tokens = x_embedder->forward(x);                                  // [B, N, D]
  e.tokens = e.tokens + pos_embed(e.grid_h, e.grid_w, e.tokens.options());  // [B, N, D]
  e.condition = t_embedder->forward(t) + y_embedder->forward(y);     // [B, D]
  return e;
}

at::Tensor DiTImpl::forward(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y) {
  return cuda::use_fused_path(x) ? forward_fused(x, t, y) : forward_reference(x, t, y);
}

at::Tensor DiTImpl::forward_reference(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y) {
  Embedded e = embed(x, t, y);
  at::Tensor h = e.tokens;                                                             // [B, N, D]
  for (const auto& block : *blocks) h = block->as<nn::DiTBlock>()->forward(h, e.condition);  // [B, N, D]
  h = final_layer->forward(h, e.condition);                                           // [B, N, p*p*Cout]
  return unpatchify(h, e.grid_h, e.grid_w);                                           // [B, Cout, H, W]
}

at::Tensor DiTImpl::forward_fused(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y) {
  Embedded e = embed(x, t, y);
  const at::Tensor silu_c = at::silu(e.condition);  // [B, D], shared by every adaLN head
  const int depth = static_cast<int>(blocks->size());
  auto block = [&](int i) { return blocks[i]->as<nn::DiTBlock>(); };
  std::vector<at::Tensor> mod = block(0)->modulation(silu_c);                 // 6 x [B, D]
  at::Tensor h = e.tokens;                                                    // [B, N, D]
  at::Tensor h_mod = cuda::layer_norm_modulate(h, mod[0], mod[1]);            // [B, N, D]
  for (int i = 0; i < depth; ++i) {
    std::vector<at::Tensor> next = i + 1 < depth ? block(i + 1)->modulation(silu_c)      // 6 x [B, D]
                                                 : final_layer->modulation(silu_c);      // 2 x [B, D]
    std::tie(h, h_mod) = block(i)->forward_chained(h, h_mod, mod, next[0], next[1]);     // [B, N, D] x2
    mod = std::move(next);
  }
  at::Tensor out = at::linear(h_mod, final_layer->linear->weight, final_layer->linear->bias);  // [B, N, p*p*Cout]
  return unpatchify(out, e.grid_h, e.grid_w);                                 // [B, Cout, H, W]
}

void DiTImpl::initialize_weights() {
  torch::NoGradGuard no_grad;
  for (auto& module : modules(/*include_self=*/false)) {
    if (auto* linear = module->as<torch::nn::Linear>()) {
      torch::nn::init::xavier_uniform_(linear->weight);
      torch::nn::init::zeros_(linear->bias);
    }
  }
  // Like nn.Linear: xavier over the flattened conv kernel.
  at::Tensor w = x_embedder->proj->weight;
  torch::nn::init::xavier_uniform_(w.view({w.size(0), -1}));
  torch::nn::init::zeros_(x_embedder->proj->bias);
  torch::nn::init::normal_(y_embedder->embedding_table->weight, 0.0, 0.02);
  for (int i : {0, 2}) torch::nn::init::normal_(t_embedder->mlp[i]->as<torch::nn::Linear>()->weight, 0.0, 0.02);
  // adaLN-Zero: each block starts as the identity, the output layer as zero.
  for (const auto& block : *blocks) {
    auto* lin = block->as<nn::DiTBlock>()->adaLN_modulation[1]->as<torch::nn::Linear>();
    torch::nn::init::zeros_(lin->weight);
    torch::nn::init::zeros_(lin->bias);
  }
  auto* final_mod = final_layer->adaLN_modulation[1]->as<torch::nn::Linear>();
  for (at::Tensor t : {final_mod->weight, final_mod->bias, final_layer->linear->weight, final_layer->linear->bias})
    torch::nn::init::zeros_(t);
}

void DiTImpl::normal_weights(double std, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  c10::InferenceMode guard;
  for (at::Tensor& p : parameters()) p.copy_(at::normal(0.0, std, p.sizes(), gen, at::kFloat));
}

double dit_gflops(const DiTConfig& c, int height, int width) {
  const double p = c.patch_size, D = c.hidden_size, M = c.mlp_hidden();
  const double N = (height / p) * (width / p);
  const double embed = N * p * p * c.in_channels * D + 256.0 * D + D * D;  // patches, timestep MLP
  const double block = N * (3 * D * D + D * D + 2 * D * M) + 2 * N * N * D + 6 * D * D;  // qkv, proj, MLP, attn, adaLN
  const double final_layer = 2 * D * D + N * D * p * p * c.out_channels();
  return (embed + c.depth * block + final_layer) / 1e9;
}

int64_t dit_parameter_count(const DiTConfig& c) {
  const int64_t D = c.hidden_size, M = c.mlp_hidden(), p = c.patch_size;
  const int64_t embed = (p * p * c.in_channels * D + D) + (256 * D + D + D * D + D) +
                        (c.num_classes + (c.has_null_class() ? 1 : 0)) * D;
  const int64_t block = (3 * D * D + 3 * D) + (D * D + D) + (D * M + M) + (M * D + D) + (6 * D * D + 6 * D);
  const int64_t final_layer = (2 * D * D + 2 * D) + (D * p * p * c.out_channels() + p * p * c.out_channels());
  return embed + c.depth * block + final_layer;
}

}  // namespace ditgen
