#include "ditgen/nn/attention.h"

#include <algorithm>
#include <array>
#include <optional>

#include <ATen/Context.h>
#include <ATen/SDPBackend.h>

#include "ditgen/core/error.h"
#include "ditgen/cuda/dispatch.h"

namespace ditgen::nn {

AttentionImpl::AttentionImpl(int hidden_size, int num_heads) : num_heads_(num_heads) {
  qkv = register_module("qkv", LoRALinear(hidden_size, 3 * hidden_size));
  proj = register_module("proj", LoRALinear(hidden_size, hidden_size));
}

at::Tensor AttentionImpl::forward(const at::Tensor& x) { return forward_input(LinearInput{x}); }

at::Tensor AttentionImpl::forward_input(const LinearInput& x) {
  const at::Tensor h = split_heads(qkv->forward_input(x), num_heads_);  // [3, B, H, N, hd]
  return proj->forward(merge_heads(attention_core(h[0], h[1], h[2])));  // [B, N, D]
}

CrossAttentionImpl::CrossAttentionImpl(int hidden_size, int num_heads) : num_heads_(num_heads) {
  q = register_module("q", LoRALinear(hidden_size, hidden_size));
  kv = register_module("kv", LoRALinear(hidden_size, 2 * hidden_size));
  proj = register_module("proj", LoRALinear(hidden_size, hidden_size));
}

at::Tensor CrossAttentionImpl::forward(const at::Tensor& queries, const at::Tensor& context,
                                       const at::Tensor& context_mask) {
  const int64_t B = queries.size(0), M = queries.size(1), N = context.size(1), D = queries.size(2);
  const int64_t H = num_heads_, hd = D / H;
  at::Tensor qh = q->forward(queries).view({B, M, H, hd}).transpose(1, 2);                  // [B, H, M, hd]
  at::Tensor kvh = kv->forward(context)
                       .view({B, N, 2, H, hd})
                       .permute({2, 0, 3, 1, 4});                                          // [2, B, H, N, hd]
  const std::optional<at::Tensor> mask =
      context_mask.defined() ? std::optional<at::Tensor>(context_mask.view({B, 1, 1, N})) : std::nullopt;  // [B, 1, 1, N]
  at::Tensor o = at::scaled_dot_product_attention(qh, kvh[0], kvh[1], mask);                // [B, H, M, hd]
  return proj->forward(merge_heads(o));                                                      // [B, M, D]
}

at::Tensor split_heads(const at::Tensor& qkv, int64_t heads) {
  const int64_t B = qkv.size(0), N = qkv.size(1), D = qkv.size(2) / 3;
  return qkv.view({B, N, 3, heads, D / heads})  // [B, N, 3, H, hd]
      .permute({2, 0, 3, 1, 4});                // [3, B, H, N, hd]
}

at::Tensor merge_heads(const at::Tensor& o) {
  return o.transpose(1, 2).flatten(2);  // [B, N, D]
}

bool regions_run_variable_length(const at::Tensor& q, const WindowRegions& regions) {
  return regions.starts.defined() && cuda::variable_length_flash_runs(q);
}

at::Tensor attention_core(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const WindowRegions& regions) {
  // SDPA picks flash / memory-efficient / math kernels by device and dtype; math equals softmax(qk^T/sqrt(hd))v.
  if (!regions.mask.defined()) return at::scaled_dot_product_attention(q, k, v);  // [B, H, N, hd]
  const int64_t BP = q.size(0), H = q.size(1), n = q.size(2), hd = q.size(3), P = regions.mask.size(0);
  TORCH_CHECK(BP % P == 0, "window attention over ", BP, " windows with regions for ", P);
  if (regions_run_variable_length(q, regions)) {
    // Each region of each image one sequence: cumulative starts over the B images' B * P * n tokens.
    const at::Tensor image_start = at::arange(BP / P, regions.starts.options()).mul_(P * n).unsqueeze(1);  // [B, 1]
    const at::Tensor cu = at::cat({(regions.starts.slice(0, 0, -1).unsqueeze(0) + image_start).flatten(),
                                   at::full({1}, BP * n, regions.starts.options())});                     // [B R + 1]
    auto tokens = [&](const at::Tensor& t) { return t.transpose(1, 2).reshape({BP * n, H, hd}); };      // [T, H, hd]
    const at::Tensor o = std::get<0>(at::_flash_attention_forward(tokens(q), tokens(k), tokens(v), cu, cu, regions.longest,
                                                                  regions.longest, 0.0, false, false));  // [T, H, hd]
    return o.view({BP, n, H, hd}).transpose(1, 2);                                                      // [B * P, H, n, hd]
  }
  at::Tensor mask = regions.mask.unsqueeze(0)                      // [1, P, n, n]
                        .expand({BP / P, P, n, n})                 // [B, P, n, n]
                        .reshape({BP, 1, n, n});                   // [B * P, 1, n, n]
  return at::scaled_dot_product_attention(q, k, v, mask);         // [B * P, H, n, hd]
}

namespace {

// SDPBackend values by name (overrideable, a plug-in slot, is not one to choose).
const std::vector<std::pair<std::string, at::SDPBackend>>& backends() {
  static const std::vector<std::pair<std::string, at::SDPBackend>> table{
      {"flash", at::SDPBackend::flash_attention},
      {"efficient", at::SDPBackend::efficient_attention},
      {"math", at::SDPBackend::math},
      {"cudnn", at::SDPBackend::cudnn_attention}};
  return table;
}

// Torch's own order, read once. On the GPU torch installs it lazily, at its first SDPA choice (cuDNN first on
// Hopper and Blackwell), over any order set before that, so one choice on a tiny CUDA input comes first.
const std::array<at::SDPBackend, at::num_sdp_backends>& torch_default_order() {
  static const std::array<at::SDPBackend, at::num_sdp_backends> order = [] {
    if (at::hasCUDA()) {
      const at::Tensor q = at::zeros({1, 1, 1, 8}, at::TensorOptions().device(at::kCUDA).dtype(at::kHalf));
      at::_fused_sdp_choice(q, q, q);
    }
    return at::globalContext().sDPPriorityOrder();
  }();
  return order;
}

}  // namespace

void prefer_attention_backend(const std::string& name) {
  const auto named = std::find_if(backends().begin(), backends().end(), [&](const auto& b) { return b.first == name; });
  if (named == backends().end() && name != "auto")
    throw Error(ErrorKind::Usage, "unknown attention backend '" + name + "' (use auto, flash, cudnn, efficient or math)");
  std::vector<int64_t> order;  // the named backend, then torch's order without it
  if (named != backends().end()) order.push_back(static_cast<int64_t>(named->second));
  for (const at::SDPBackend backend : torch_default_order())
    if (named == backends().end() || backend != named->second) order.push_back(static_cast<int64_t>(backend));
  at::globalContext().setSDPPriorityOrder(order);
}

std::string attention_backend(int64_t batch, int64_t heads, int64_t tokens, int64_t head_dim,
                              const at::TensorOptions& options) {
  // Laid out as forward() slices them from the fused qkv projection.
  at::Tensor qkv = at::empty({batch, tokens, 3, heads, head_dim}, options).permute({2, 0, 3, 1, 4});
  const auto chosen = static_cast<at::SDPBackend>(at::_fused_sdp_choice(qkv[0], qkv[1], qkv[2]));
  for (const auto& [name, backend] : backends())
    if (backend == chosen) return name;
  return "other";
}

}  // namespace ditgen::nn
