#include "ditgen/models/dit.h"

#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>

#include <torch/nn/init.h>

#include "ditgen/core/error.h"
#include "ditgen/cuda/dispatch.h"
#include "ditgen/nn/video_tokens.h"

namespace ditgen {

namespace {

// The linears that carry one LoRA per patch size in a lora-mode flexible model (the paper's choice:
// self-attention and MLP).
std::vector<nn::LoRALinear> adapted_linears(torch::nn::ModuleList& blocks) {
  std::vector<nn::LoRALinear> out;
  for (const auto& module : *blocks) {
    auto* block = module->as<nn::DiTBlock>();
    for (const nn::LoRALinear& l : {block->attn->qkv, block->attn->proj, block->mlp->fc1, block->mlp->fc2})
      out.push_back(l);
  }
  return out;
}

std::string adapter_name(int patch) { return "p" + std::to_string(patch); }

}  // namespace

DiTImpl::DiTImpl(const DiTConfig& config) : config_(config) {
  config_.validate(ErrorKind::Usage);
  const int D = config_.hidden_size;
  // A shared flexible tokenizer keeps its underlying p' x p' weights in the base layers.
  const bool shared = config_.flex.flexible() && !config_.flex.lora();
  const int base_patch = shared ? config_.flex.underlying_patch : config_.patch_size;
  x_embedder = register_module("x_embedder", nn::PatchEmbed(config_.in_channels, D, base_patch));
  if (config_.video()) temporal_pos_gate = register_parameter("temporal_pos_gate", at::ones({D}));
  t_embedder = register_module("t_embedder", nn::TimestepEmbedder(D));
  const bool text = config_.text.enabled();
  if (text)
    text_encoder = register_module("text_encoder", text::TextEncoder(config_.text, D));
  else
    y_embedder = register_module("y_embedder", nn::LabelEmbedder(config_.num_classes, D, config_.has_null_class()));
  const int M = config_.mlp_hidden(), H = config_.num_heads;
  if (config_.sparse.sparse()) {
    const SparseConfig& q = config_.sparse;
    pooling_blocks = register_module("pooling_blocks", torch::nn::ModuleList());
    for (int i = 0; i < q.pooling_blocks; ++i) pooling_blocks->push_back(nn::PoolingformerBlock(D, M));
    sparse_modules = register_module("sparse_modules", torch::nn::ModuleList());
    for (int i = 0; i < q.modules; ++i) sparse_modules->push_back(nn::SparseDenseModule(D, H, M, q.semantic, q.dense, text));
  }
  if (config_.proxy.proxy()) {
    proxy_blocks = register_module("proxy_blocks", torch::nn::ModuleList());
    const bool single = config_.proxy.adaln_single;
    for (int i = 0; i < config_.depth; ++i) proxy_blocks->push_back(nn::ProxyTokenBlock(D, H, M, text, !single));
    if (single) adaLN_modulation = register_module("adaLN_modulation", nn::adaln_head(D, 9));
  }
  if (config_.ssm.ssm()) {
    ssm_blocks = register_module("ssm_blocks", torch::nn::ModuleList());
    for (int i = 0; i < config_.depth; ++i)
      ssm_blocks->push_back(nn::DiffuSSMBlock(D, config_.ssm.hourglass, M, config_.ssm.state_size,
                                              config_.ssm.shared_kernel(), text ? H : 0));
  }
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int i = 0; i < config_.top_blocks(); ++i) blocks->push_back(nn::DiTBlock(D, H, M, text));
  final_layer = register_module("final_layer", nn::FinalLayer(D, base_patch, config_.out_channels()));
  if (!config_.flex.flexible()) return;
  flex = register_module("flex", nn::FlexibleTokenizer(config_));
  if (!config_.flex.lora()) return;
  adapted_ = adapted_linears(blocks);
  uint64_t seed = 0;
  for (int p : config_.flex.patch_sizes)
    if (p != config_.patch_size)
      for (nn::LoRALinear& l : adapted_) l->add_named_lora(adapter_name(p), config_.flex.lora_rank, config_.flex.lora_alpha, ++seed);
}

void DiTImpl::set_lora_merged(bool merged) {
  for (nn::LoRALinear& l : adapted_) l->set_named_merged(merged);
  lora_merged_ = merged && !adapted_.empty();
}

at::Tensor DiTImpl::pos_embed(int frames, int grid_h, int grid_w, int patch, const at::TensorOptions& options) {
  Positions& cached = pos_cache_[{frames, grid_h, grid_w, patch}];
  const at::Tensor& any = cached.image;
  if (!any.defined() || any.device() != options.device() || any.scalar_type() != options.dtype()) {
    const int64_t D = config_.hidden_size;
    const double step = static_cast<double>(patch) / config_.patch_size;  // positions in pre-trained grid units
    const at::Tensor image = nn::sincos_pos_embed_2d(D, grid_h, grid_w, step);  // [1, h*w, D]
    cached.image = image.repeat({1, frames, 1}).to(options);                      // [1, F*h*w, D]
    if (frames > 1)
      cached.time = nn::temporal_pos_embed(D, frames).unsqueeze(1)               // [F, 1, D]
                        .expand({frames, grid_h * grid_w, D})                     // [F, h*w, D]
                        .reshape({1, -1, D})                                      // [1, F*h*w, D]
                        .to(options);
  }
  if (!cached.time.defined()) return cached.image;
  return cached.image + temporal_pos_gate.to(options.dtype()) * cached.time;      // [1, F*h*w, D]
}

at::Tensor DiTImpl::unpatchify(const at::Tensor& x, const Embedded& e) const {
  const int64_t B = x.size(0) * e.frames, p = e.patch, C = config_.out_channels();
  at::Tensor images = x.reshape({B, e.grid_h, e.grid_w, p, p, C})  // [B*F, h, w, p, q, C]
                          .permute({0, 5, 1, 3, 2, 4})             // [B*F, C, h, p, w, q]
                          .reshape({B, C, e.grid_h * p, e.grid_w * p});  // [B*F, C, H, W]
  return e.clip ? nn::batch_as_frames(images, e.frames) : images;  // [B, C, F, H, W] or [B, C, H, W]
}

nn::FlexibleTokenizerImpl::Weights DiTImpl::base_tokenizer() const {
  return {x_embedder->proj->weight, x_embedder->proj->bias, final_layer->linear->weight, final_layer->linear->bias};
}

DiTImpl::Embedded DiTImpl::embed(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y, int patch, int grid) {
  const int p = patch > 0 ? patch : config_.patch_size;
  TORCH_CHECK(config_.supports_patch(p), "this model does not run at patch size ", p);
  TORCH_CHECK((x.dim() == 4 || x.dim() == 5) && x.size(1) == config_.in_channels, "DiT expects [B, ",
              config_.in_channels, ", H, W] or a clip [B, ", config_.in_channels, ", F, H, W], got ", x.sizes());
  Embedded e;
  e.clip = x.dim() == 5;
  e.frames = e.clip ? static_cast<int>(x.size(2)) : 1;
  config_.check_frames(e.frames);
  const at::Tensor images = e.clip ? nn::frames_as_batch(x) : x;  // [B*F, C, H, W]
  TORCH_CHECK(images.size(2) % p == 0 && images.size(3) % p == 0, "DiT input ", x.sizes(),
              " is not divisible by patch ", p);
  e.patch = p;
  e.grid_h = static_cast<int>(images.size(2)) / p;
  e.grid_w = static_cast<int>(images.size(3)) / p;
  config_.check_token_grid(e.grid_h, e.grid_w);
  TORCH_CHECK(grid == 0 || config_.sparse.sparse(), "a sparse grid was given to a dense model");
  e.sparse_grid = config_.sparse_grid(grid);
  TORCH_CHECK(e.sparse_grid <= std::min(e.grid_h, e.grid_w) && grid >= 0, "sparse grid ", e.sparse_grid,
              " does not fit the ", e.grid_h, "x", e.grid_w, " token grid");
  nn::FlexibleTokenizerImpl::Weights w = base_tokenizer();
  if (flex) w = flex->weights(p, w);
  if (!adapted_.empty()) {
    const std::string adapter = p == config_.patch_size ? "" : adapter_name(p);
    for (nn::LoRALinear& l : adapted_) l->use_adapter(adapter);
  }
  e.deembed_weight = w.deembed_weight;
  e.deembed_bias = w.deembed_bias;
  e.tokens = nn::patchify(images, w.embed_weight, w.embed_bias)                   // [B*F, h*w, D]
                 .reshape({x.size(0), -1, config_.hidden_size});                 // [B, N = F*h*w, D]
  e.tokens = e.tokens + pos_embed(e.frames, e.grid_h, e.grid_w, p, e.tokens.options());  // [B, N, D]
  if (flex) {
    at::Tensor size_embed = flex->patch_embedding(p);                              // [D] or undefined
    if (size_embed.defined()) e.tokens = e.tokens + size_embed;                    // [B, N, D]
  }
  if (text_encoder) {
    text::TextCondition prompt = text_encoder->forward(y);                       // [B, L, D], [B, D]
    e.condition = t_embedder->forward(t) + prompt.pooled;                        // [B, D]
    e.text = prompt.tokens;
  } else {
    e.condition = t_embedder->forward(t) + y_embedder->forward(y);              // [B, D]
  }
  return e;
}

at::Tensor DiTImpl::forward(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y, int patch, int grid) {
  return cuda::use_fused_path(x) ? forward_fused(x, t, y, patch, grid) : forward_reference(x, t, y, patch, grid);
}

at::Tensor DiTImpl::sparse_stages(const at::Tensor& tokens, const Embedded& e) {
  if (!config_.sparse.sparse()) return tokens;
  at::Tensor h = tokens;                                                                               // [B, N, D]
  for (const auto& block : *pooling_blocks) h = block->as<nn::PoolingformerBlock>()->forward(h, e.condition);  // [B, N, D]
  for (const auto& module : *sparse_modules)
    h = module->as<nn::SparseDenseModule>()->forward(h, e.condition, e.sparse_grid, e.grid_h, e.grid_w, e.text);  // [B, N, D]
  return h;
}

nn::WindowGrid proxy_window_grid(const DiTConfig& config, int64_t frames, int64_t grid_h, int64_t grid_w) {
  const int64_t windows = config.proxy.windows;
  return {{frames, grid_h, grid_w},
          {config.window_frames(static_cast<int>(frames)), grid_h / windows, grid_w / windows}};
}

const nn::WindowLayout& DiTImpl::window_layout(const nn::WindowGrid& g, const c10::Device& device) {
  nn::WindowLayout& cached = layout_cache_[{g.grid[0], g.grid[1], g.grid[2], device.str()}];
  if (!cached.raster_of_window_token.defined()) cached = nn::make_window_layout(g, device);
  return cached;
}

at::Tensor DiTImpl::proxy_stages(const at::Tensor& tokens, const Embedded& e) {
  if (!config_.proxy.proxy()) return tokens;
  const nn::WindowGrid g = proxy_window_grid(config_, e.frames, e.grid_h, e.grid_w);
  const nn::WindowLayout& layout = window_layout(g, tokens.device());
  const at::Tensor shared_mod = adaLN_modulation ? adaLN_modulation->forward(e.condition) : at::Tensor();  // [B, 9D]
  at::Tensor h = nn::gather_tokens(tokens, layout.raster_of_window_token);          // [B, N, D] window-major
  for (const auto& item : *proxy_blocks) {
    auto* block = item->as<nn::ProxyTokenBlock>();
    const at::Tensor mod = block->adaLN_modulation ? block->adaLN_modulation->forward(e.condition) : shared_mod;  // [B, 9D]
    h = block->forward(h, mod, g, layout, config_.proxy.proxy_split, e.text);       // [B, N, D]
  }
  return nn::gather_tokens(h, layout.window_of_raster_token);                       // [B, N, D] raster
}

at::Tensor DiTImpl::ssm_stages(const at::Tensor& tokens, const Embedded& e) {
  if (!config_.ssm.ssm()) return tokens;
  at::Tensor h = tokens;                                                                               // [B, N, D]
  for (const auto& block : *ssm_blocks) h = block->as<nn::DiffuSSMBlock>()->forward(h, e.condition, e.text);  // [B, N, D]
  return h;
}

at::Tensor DiTImpl::leading_stages(const at::Tensor& tokens, const Embedded& e) {
  return ssm_stages(proxy_stages(sparse_stages(tokens, e), e), e);  // [B, N, D]
}

at::Tensor DiTImpl::forward_reference(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y, int patch,
                                      int grid) {
  Embedded e = embed(x, t, y, patch, grid);
  at::Tensor h = leading_stages(e.tokens, e);                         // [B, N, D]
  for (const auto& block : *blocks) h = block->as<nn::DiTBlock>()->forward(h, e.condition, e.text);  // [B, N, D]
  h = final_layer->forward(h, e.condition, e.deembed_weight, e.deembed_bias);         // [B, N, p*p*Cout]
  return unpatchify(h, e);                                                            // [B, Cout, H, W]
}

at::Tensor DiTImpl::forward_fused(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y, int patch,
                                  int grid) {
  Embedded e = embed(x, t, y, patch, grid);
  const at::Tensor silu_c = at::silu(e.condition);  // [B, D], shared by every adaLN head
  const int depth = static_cast<int>(blocks->size());
  auto block = [&](int i) { return blocks[i]->as<nn::DiTBlock>(); };
  std::vector<at::Tensor> mod = depth > 0 ? block(0)->modulation(silu_c)      // 6 x [B, D]
                                          : final_layer->modulation(silu_c);  // 2 x [B, D]
  at::Tensor h = leading_stages(e.tokens, e);                 // [B, N, D]
  // Each norm goes to the projection after it, quantized in the adaLN kernel where that is an integer layer.
  nn::LinearInput h_mod =
      nn::layer_norm_modulate_for(depth > 0 ? &block(0)->attn->qkv : nullptr, h, mod[0], mod[1]);  // [B, N, D]
  for (int i = 0; i < depth; ++i) {
    std::vector<at::Tensor> next = i + 1 < depth ? block(i + 1)->modulation(silu_c)      // 6 x [B, D]
                                                 : final_layer->modulation(silu_c);      // 2 x [B, D]
    const nn::LoRALinear* next_qkv = i + 1 < depth ? &block(i + 1)->attn->qkv : nullptr;
    std::tie(h, h_mod) = block(i)->forward_chained(h, h_mod, mod, next[0], next[1], e.text, next_qkv);  // [B, N, D] x2
    mod = std::move(next);
  }
  at::Tensor out = at::linear(h_mod.values, e.deembed_weight, e.deembed_bias);  // [B, N, p*p*Cout]
  return unpatchify(out, e);                                                  // [B, Cout, H, W]
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
  if (y_embedder) torch::nn::init::normal_(y_embedder->embedding_table->weight, 0.0, 0.02);
  if (text_encoder) {
    torch::nn::init::normal_(text_encoder->token_embedding->weight, 0.0, 0.02);
    torch::nn::init::normal_(text_encoder->positions, 0.0, 0.02);
  }
  for (int i : {0, 2}) torch::nn::init::normal_(t_embedder->mlp[i]->as<torch::nn::Linear>()->weight, 0.0, 0.02);
  // adaLN-Zero: each block starts as the identity, the output layer as zero.
  const std::string head = "adaLN_modulation";
  for (const auto& item : named_modules("", /*include_self=*/false)) {
    const std::string& name = item.key();
    if (name.size() < head.size() || name.compare(name.size() - head.size(), head.size(), head) != 0) continue;
    auto* lin = (*item.value()->as<torch::nn::Sequential>())[1]->as<torch::nn::Linear>();
    torch::nn::init::zeros_(lin->weight);
    torch::nn::init::zeros_(lin->bias);
  }
  // A recovery block starts as the dense tokens (W1 = 0, W2 = I), as after conversion.
  if (sparse_modules)
    for (const auto& module : *sparse_modules) module->as<nn::SparseDenseModule>()->token_recover->start_as_dense();
  // A PT-DiT block starts without global mixing: the proxy cross-attention's output projection is zero.
  if (proxy_blocks)
    for (const auto& block : *proxy_blocks)
      for (at::Tensor t : {block->as<nn::ProxyTokenBlock>()->proxy_cross->proj->weight,
                           block->as<nn::ProxyTokenBlock>()->proxy_cross->proj->bias})
        torch::nn::init::zeros_(t);
  // Text attention starts without effect (xavier above overwrote its zeros).
  for (const auto& item : named_modules("", /*include_self=*/false))
    if (auto* cross = item.value()->as<nn::CrossAttention>(); cross && item.key().ends_with("text_cross"))
      for (at::Tensor t : {cross->proj->weight, cross->proj->bias}) torch::nn::init::zeros_(t);
  auto* final_mod = final_layer->adaLN_modulation[1]->as<torch::nn::Linear>();
  for (at::Tensor t : {final_mod->weight, final_mod->bias, final_layer->linear->weight, final_layer->linear->bias})
    torch::nn::init::zeros_(t);
}

void DiTImpl::normal_weights(double std, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  c10::InferenceMode guard;
  for (at::Tensor& p : parameters()) p.copy_(at::normal(0.0, std, p.sizes(), gen, at::kFloat));
}

}  // namespace ditgen
