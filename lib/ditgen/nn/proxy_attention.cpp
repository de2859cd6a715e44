#include "ditgen/nn/proxy_attention.h"

#include <cmath>
#include <tuple>
#include <vector>

#include <torch/nn/init.h>

#include "ditgen/cuda/adaln.h"
#include "ditgen/cuda/dispatch.h"
#include "ditgen/nn/dit_block.h"

#ifdef DITGEN_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "ditgen/cuda/window_attention_kernels.h"
#endif

namespace ditgen::nn {

std::array<int64_t, 3> WindowGrid::shift() const {
  std::array<int64_t, 3> s{};
  for (int a = 0; a < 3; ++a) s[a] = window[a] < grid[a] ? window[a] / 2 : 0;
  return s;
}

at::Tensor window_partition(const at::Tensor& x, const WindowGrid& g) {
  const auto [F, H, W] = g.grid;
  const auto [pt, ph, pw] = g.window;
  const int64_t B = x.size(0), D = x.size(-1);
  return x.reshape({B, F / pt, pt, H / ph, ph, W / pw, pw, D})  // [B, f, pt, h, ph, w, pw, D]
      .permute({0, 1, 3, 5, 2, 4, 6, 7})                       // [B, f, h, w, pt, ph, pw, D]
      .reshape({B, g.windows(), g.window_tokens(), D});        // [B, P, n, D]
}

at::Tensor window_merge(const at::Tensor& windows, const WindowGrid& g) {
  const auto [F, H, W] = g.grid;
  const auto [pt, ph, pw] = g.window;
  const int64_t B = windows.size(0), D = windows.size(-1);
  return windows.reshape({B, F / pt, H / ph, W / pw, pt, ph, pw, D})  // [B, f, h, w, pt, ph, pw, D]
      .permute({0, 1, 4, 2, 5, 3, 6, 7})                             // [B, f, pt, h, ph, w, pw, D]
      .reshape({B, F, H, W, D});                                     // [B, F, H, W, D]
}

at::Tensor roll_grid(const at::Tensor& x, const WindowGrid& g, bool undo) {
  const auto s = g.shift();
  const int64_t sign = undo ? 1 : -1;
  return at::roll(x, {sign * s[0], sign * s[1], sign * s[2]}, {1, 2, 3});  // [B, F, H, W, D]
}

namespace {

// Tokens attend to each other when their region labels agree. label [P, n] -> [P, n, n] bool
at::Tensor same_region(const at::Tensor& label) { return label.unsqueeze(2) == label.unsqueeze(1); }

}  // namespace

at::Tensor shifted_region_labels(const WindowGrid& g, const at::TensorOptions& options) {
  const auto s = g.shift();
  at::Tensor label = at::zeros({1, g.grid[0], g.grid[1], g.grid[2], 1}, options.dtype(at::kLong));  // [1, F, H, W, 1]
  int64_t weight = 1;
  for (int a = 0; a < 3; ++a, weight *= 3) {
    if (s[a] == 0) continue;
    const int64_t G = g.grid[a], p = g.window[a];
    at::Tensor r = at::arange(G, label.options());                          // [G] rolled positions
    at::Tensor region = (r >= G - p).to(at::kLong) + (r >= G - s[a]).to(at::kLong);  // [G] in {0, 1, 2}
    std::vector<int64_t> shape{1, 1, 1, 1, 1};
    shape[a + 1] = G;
    label = label + weight * region.view(shape);                              // [1, F, H, W, 1]
  }
  return window_partition(label, g).squeeze(-1).squeeze(0);  // [P, n]
}

at::Tensor shifted_window_mask(const WindowGrid& g, const at::TensorOptions& options) {
  return same_region(shifted_region_labels(g, options));  // [P, n, n]
}

WindowLayout make_window_layout(const WindowGrid& g, const c10::Device& device) {
  const int64_t N = g.tokens(), P = g.windows(), n = g.window_tokens();
  const auto options = at::TensorOptions().dtype(at::kLong);
  const at::Tensor raster = at::arange(N, options).view({1, g.grid[0], g.grid[1], g.grid[2], 1});  // [1, F, H, W, 1]
  auto inverse = [&](const at::Tensor& order) {
    return at::empty_like(order).scatter_(0, order, at::arange(N, options));  // [N]
  };
  WindowLayout l;
  l.raster_of_window_token = window_partition(raster, g).flatten();                       // [N]
  l.window_of_raster_token = inverse(l.raster_of_window_token);                             // [N]
  at::Tensor shifted_raster = window_partition(roll_grid(raster, g), g).flatten();         // [N]
  const auto s = g.shift();
  if (s[0] || s[1] || s[2]) {
    // Label 27 w + region (< 27) orders windows, then regions inside each; the sort is stable.
    const at::Tensor key = (shifted_region_labels(g, options) + 27 * at::arange(P, options).unsqueeze(1)).flatten();
    const auto [sorted, order] = key.sort(/*stable=*/true, 0, false);                     // [N] x2
    shifted_raster = shifted_raster.index_select(0, order);                                // [N]
    l.shift_regions.mask = same_region(sorted.view({P, n})).to(device);                   // [P, n, n]
    l.shift_regions.labels = sorted.to(at::kInt).to(device);                               // [N]
    const at::Tensor sizes = std::get<2>(at::unique_consecutive(sorted, false, true));     // [R] tokens a region
    l.shift_regions.longest = sizes.max().item<int64_t>();
    l.shift_regions.starts = at::cat({at::zeros({1}, options), sizes.cumsum(0)}).to(at::kInt).to(device);  // [R + 1]
  }
  l.to_shifted = l.window_of_raster_token.index_select(0, shifted_raster);                  // [N]
  l.from_shifted = inverse(l.to_shifted);                                                   // [N]
  for (at::Tensor* t : {&l.raster_of_window_token, &l.window_of_raster_token, &l.to_shifted, &l.from_shifted})
    *t = t->to(device);
  return l;
}

at::Tensor gather_tokens(const at::Tensor& x, const at::Tensor& index) {
  const int64_t row_bytes = x.size(2) * x.element_size();
  if (x.requires_grad() || !x.is_contiguous() || row_bytes % 8 != 0 || x.element_size() >= 8 ||
      x.storage_offset() * x.element_size() % 8 != 0)
    return x.index_select(1, index);                                          // [B, N', D]
  const at::Tensor words = x.view(at::kLong);                                 // [B, N, D * size / 8]
  return words.index_select(1, index).view(x.scalar_type());                  // [B, N', D]
}

at::Tensor window_attention_reference(const at::Tensor& qkv, int64_t heads, const WindowGrid& g,
                                      const WindowLayout& layout, bool shifted) {
  const int64_t B = qkv.size(0), N = qkv.size(1), P = g.windows(), n = g.window_tokens();
  const at::Tensor windows = shifted ? gather_tokens(qkv, layout.to_shifted) : qkv;          // [B, N, 3D]
  const at::Tensor h = split_heads(windows.view({B * P, n, qkv.size(2)}), heads);           // [3, B * P, H, n, hd]
  const at::Tensor o = attention_core(h[0], h[1], h[2], shifted ? layout.shift_regions : WindowRegions{});
  const at::Tensor tokens = merge_heads(o).view({B, N, -1});                                 // [B, N, D]
  return shifted ? gather_tokens(tokens, layout.from_shifted) : tokens;                     // [B, N, D]
}

bool window_attention_runs_kernel(const at::Tensor& qkv, int64_t heads, const WindowGrid& g) {
  return cuda::window_attention_runs_kernel(qkv, heads, g.window_tokens());
}

#ifdef DITGEN_HAVE_CUDA
namespace {

// window_attention by the fused kernel (window_attention_runs_kernel holds). qkv [B, N, 3D] -> [B, N, D]
at::Tensor fused_window_attention(const at::Tensor& qkv, int64_t heads, const WindowGrid& g, const WindowLayout& layout,
                                  bool shifted) {
  const c10::cuda::CUDAGuard guard(qkv.device());
  const int64_t B = qkv.size(0), N = qkv.size(1), D = qkv.size(2) / 3;
  at::Tensor out = at::empty({B, N, D}, qkv.options());                                     // [B, N, D]
  cuda::WindowAttentionArgs args;
  args.qkv = qkv.data_ptr();
  args.out = out.data_ptr();
  if (shifted) {
    args.order = layout.to_shifted.data_ptr<int64_t>();
    if (layout.shift_regions.labels.defined()) args.labels = layout.shift_regions.labels.data_ptr<int32_t>();
  }
  args.batch = B;
  args.tokens = N;
  args.heads = heads;
  args.head_dim = D / heads;
  args.window_tokens = g.window_tokens();
  args.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D / heads)));
  const cudaError_t error =
      cuda::launch_window_attention(args, cuda::element_type_of(qkv), at::cuda::getCurrentCUDAStream());
  TORCH_CHECK(error == cudaSuccess, "window attention kernel launch failed: ", cudaGetErrorString(error));
  return out;
}

}  // namespace
#endif

at::Tensor window_attention(const at::Tensor& qkv, int64_t heads, const WindowGrid& g, const WindowLayout& layout,
                            bool shifted) {
#ifdef DITGEN_HAVE_CUDA
  if (window_attention_runs_kernel(qkv, heads, g)) return fused_window_attention(qkv, heads, g, layout, shifted);
#endif
  return window_attention_reference(qkv, heads, g, layout, shifted);
}

at::Tensor proxy_tokens(const at::Tensor& x, const WindowGrid& g, int split) {
  const auto [pt, ph, pw] = g.window;
  const int64_t B = x.size(0), D = x.size(2), P = g.windows();
  return x.view({B, P, pt, split, ph / split, split, pw / split, D})  // [B, P, pt, k, ph/k, k, pw/k, D]
      .mean({2, 4, 6})                                               // [B, P, k, k, D]
      .reshape({B, P * split * split, D});                           // [B, M, D]
}

ProxyTokenBlockImpl::ProxyTokenBlockImpl(int hidden_size, int num_heads, int mlp_hidden, bool with_text,
                                         bool own_adaln) {
  proxy_attn = register_module("proxy_attn", Attention(hidden_size, num_heads));
  proxy_cross = register_module("proxy_cross", CrossAttention(hidden_size, num_heads));
  window_attn = register_module("window_attn", Attention(hidden_size, num_heads));
  shifted_attn = register_module("shifted_attn", Attention(hidden_size, num_heads));
  text_cross = make_text_attention(*this, with_text, hidden_size, num_heads);
  mlp = register_module("mlp", Mlp(hidden_size, mlp_hidden));
  if (own_adaln) adaLN_modulation = register_module("adaLN_modulation", adaln_head(hidden_size, 9));
  scale_shift_table = register_parameter("scale_shift_table", at::zeros({9, hidden_size}));
  torch::NoGradGuard no_grad;
  torch::nn::init::zeros_(proxy_cross->proj->weight);  // no global mixing at the start (the paper's zero linear)
  torch::nn::init::zeros_(proxy_cross->proj->bias);
}

at::Tensor ProxyTokenBlockImpl::forward(const at::Tensor& x, const at::Tensor& shared_mod, const WindowGrid& g,
                                        const WindowLayout& layout, int proxy_split, const TextTokens& text) {
  const int64_t B = x.size(0), D = x.size(2);
  const std::vector<at::Tensor> mod = (shared_mod.view({B, 9, D}) + scale_shift_table).unbind(1);  // 9 x [B, D]
  // GIIM: global information through the proxies.
  at::Tensor p = proxy_tokens(x, g, proxy_split);                                          // [B, M, D]
  p = p + proxy_attn->forward(layer_norm_plain(p));                                        // [B, M, D]
  at::Tensor h = x + proxy_cross->forward(layer_norm_plain(x), layer_norm_plain(p));      // [B, N, D]
  // TCM: window attention, then shifted-window attention (the stream is window-major: windows are views, and
  // the projections, per token, run in the stream's order).
  at::Tensor h_mod = cuda::layer_norm_modulate(h, mod[0], mod[1]);                         // [B, N, D]
  auto windowed = [&](AttentionImpl& attn, const at::Tensor& in, bool shifted) {
    const at::Tensor qkv = attn.qkv->forward(in);                                          // [B, N, 3D]
    return attn.proj->forward(window_attention(qkv, attn.num_heads(), g, layout, shifted));  // [B, N, D]
  };
  at::Tensor a = windowed(*window_attn, h_mod, false);                                     // [B, N, D]
  std::tie(h, h_mod) = cuda::gated_residual_layer_norm_modulate(h, mod[2], a, mod[3], mod[4]);  // [B, N, D] x2
  at::Tensor s = windowed(*shifted_attn, h_mod, true);                                     // [B, N, D]
  std::tie(h, h_mod) = gated_residual_text_norm(h, mod[5], s, mod[6], mod[7], text_cross, text);  // [B, N, D] x2
  return cuda::gated_residual(h, mod[8], mlp->forward(h_mod));                             // [B, N, D]
}

}  // namespace ditgen::nn
