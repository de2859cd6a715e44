#include "ditgen/nn/flexible_tokenizer.h"

#include <algorithm>
#include <cmath>

#include <c10/util/StringUtil.h>

namespace ditgen::nn {

namespace {

// 1D bilinear weights [to, from] of torch's upsample_bilinear2d (align_corners=False): source coordinate
// (i + 0.5) * from / to - 0.5, clamped at 0, between its two neighbours.
at::Tensor linear_resize_1d(int from, int to) {
  at::Tensor r = at::zeros({to, from}, at::kDouble);
  auto a = r.accessor<double, 2>();
  const double scale = static_cast<double>(from) / to;
  for (int i = 0; i < to; ++i) {
    const double src = std::max(0.0, (i + 0.5) * scale - 0.5);
    const int i0 = std::min(static_cast<int>(src), from - 1);
    const int i1 = std::min(i0 + 1, from - 1);
    const double lambda = src - i0;
    a[i][i0] += 1.0 - lambda;
    a[i][i1] += lambda;
  }
  return r;
}

}  // namespace

at::Tensor bilinear_resize_matrix(int from, int to) {
  at::Tensor r = linear_resize_1d(from, to);  // [to, from]
  return at::kron(r, r);                      // [to*to, from*from]: pixel (i, j) is row i*to + j
}

at::Tensor embed_projection(int patch, int underlying) {
  return at::linalg_pinv(bilinear_resize_matrix(underlying, patch).t());  // [p*p, p'*p']
}

at::Tensor deembed_projection(int patch, int underlying) {
  return at::linalg_pinv(bilinear_resize_matrix(patch, underlying));  // [p*p, p'*p']
}

at::Tensor project_kernel(const at::Tensor& kernel, const at::Tensor& m) {
  const int64_t D = kernel.size(0), C = kernel.size(1), q = std::lround(std::sqrt(m.size(0)));
  at::Tensor flat = kernel.reshape({D, C, -1});              // [D, C, a*a]
  return at::matmul(flat, m.t()).reshape({D, C, q, q});      // [D, C, q, q]
}

at::Tensor project_rows(const at::Tensor& rows, const at::Tensor& m, int channels) {
  std::vector<int64_t> shape = rows.sizes().vec();
  at::Tensor grouped = rows.reshape({m.size(1), -1});  // [a*a, C * rest]: rows are (pixel, channel)
  shape[0] = m.size(0) * channels;
  return at::matmul(m, grouped).reshape(shape);        // [q*q*C, ...]
}

FlexibleTokenizerImpl::FlexibleTokenizerImpl(const DiTConfig& config) : config_(config) {
  const int D = config.hidden_size, C = config.in_channels, Cout = config.out_channels();
  for (int p : config.flex.patch_sizes) {
    if (config.flex.lora() && p == config.patch_size) continue;
    embed_index_[p] = static_cast<int>(embed_index_.size());
    if (!config.flex.lora()) continue;
    const std::string tag = "p" + std::to_string(p);
    Weights& w = own_[p];
    w.embed_weight = register_parameter("embed_" + tag + "_weight", at::zeros({D, C, p, p}));
    w.embed_bias = register_parameter("embed_" + tag + "_bias", at::zeros({D}));
    w.deembed_weight = register_parameter("deembed_" + tag + "_weight", at::zeros({p * p * Cout, D}));
    w.deembed_bias = register_parameter("deembed_" + tag + "_bias", at::zeros({p * p * Cout}));
  }
  patch_size_embed = register_parameter("patch_size_embed", at::zeros({static_cast<int64_t>(embed_index_.size()), D}));
}

const at::Tensor& FlexibleTokenizerImpl::projection(const std::string& kind, int patch, const at::Tensor& like) {
  at::Tensor& cached = projections_[{kind, patch, c10::str(like.device(), like.scalar_type())}];
  if (!cached.defined()) {
    const int a = config_.flex.underlying_patch;
    at::Tensor m = kind == "embed" ? embed_projection(patch, a) : deembed_projection(patch, a);
    cached = m.to(like.options());
  }
  return cached;
}

FlexibleTokenizerImpl::Weights& FlexibleTokenizerImpl::own(int patch) {
  auto it = own_.find(patch);
  TORCH_CHECK(it != own_.end(), "this flexible model has no patch size ", patch);
  return it->second;
}

FlexibleTokenizerImpl::Weights FlexibleTokenizerImpl::weights(int patch, const Weights& base) {
  if (config_.flex.lora()) {
    // Own layers for every size but the pre-trained one, whose forward must stay exactly the original.
    return patch == config_.patch_size ? base : own(patch);
  }
  if (patch == config_.flex.underlying_patch) return base;
  const int Cout = config_.out_channels();
  const at::Tensor& qe = projection("embed", patch, base.embed_weight);
  const at::Tensor& qd = projection("deembed", patch, base.deembed_weight);
  return {project_kernel(base.embed_weight, qe), base.embed_bias, project_rows(base.deembed_weight, qd, Cout),
          project_rows(base.deembed_bias, qd, Cout)};
}

at::Tensor FlexibleTokenizerImpl::patch_embedding(int patch) {
  auto it = embed_index_.find(patch);
  if (it == embed_index_.end()) return {};
  return patch_size_embed[it->second];  // [D]
}

void FlexibleTokenizerImpl::init_from_fixed(const Weights& fixed, Weights& base) {
  at::NoGradGuard no_grad;
  const int q = config_.patch_size, a = config_.flex.underlying_patch, Cout = config_.out_channels();
  auto f64 = [](const at::Tensor& t) { return t.detach().to(at::kCPU, at::kDouble); };
  // Underlying weights that reproduce the fixed ones at q: pinv(Q(q)) maps them up, Q(q) back exactly.
  at::Tensor kernel = project_kernel(f64(fixed.embed_weight), at::linalg_pinv(embed_projection(q, a)));  // [D,C,a,a]
  at::Tensor de_pinv = at::linalg_pinv(deembed_projection(q, a));                                       // [a*a, q*q]
  at::Tensor rows_w = project_rows(f64(fixed.deembed_weight), de_pinv, Cout);                           // [a*a*Cout, D]
  at::Tensor rows_b = project_rows(f64(fixed.deembed_bias), de_pinv, Cout);                             // [a*a*Cout]
  auto assign = [](const at::Tensor& dst, const at::Tensor& src) { dst.copy_(src.to(dst.options())); };
  if (config_.flex.lora()) {
    // The pre-trained layers stay; every other size gets the PI-resize of them.
    assign(base.embed_weight, fixed.embed_weight);
    assign(base.embed_bias, fixed.embed_bias);
    assign(base.deembed_weight, fixed.deembed_weight);
    assign(base.deembed_bias, fixed.deembed_bias);
    for (auto& [p, w] : own_) {
      assign(w.embed_weight, project_kernel(kernel, embed_projection(p, a)));
      assign(w.embed_bias, fixed.embed_bias);
      const at::Tensor de = deembed_projection(p, a);
      assign(w.deembed_weight, project_rows(rows_w, de, Cout));
      assign(w.deembed_bias, project_rows(rows_b, de, Cout));
    }
  } else {
    assign(base.embed_weight, kernel);
    assign(base.embed_bias, fixed.embed_bias);
    assign(base.deembed_weight, rows_w);
    assign(base.deembed_bias, rows_b);
  }
  patch_size_embed.zero_();
}

}  // namespace ditgen::nn
