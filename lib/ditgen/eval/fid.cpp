#include "ditgen/eval/fid.h"

#include <algorithm>
#include <string>

#include "ditgen/core/error.h"

namespace ditgen::eval {

namespace {

at::Tensor symmetrized(const at::Tensor& m) {
  return (m + m.t()) * 0.5;  // [F, F]
}

// Square root of a symmetric PSD matrix. Eigenvalues a little below zero are rounding (covariances of
// fewer samples than dimensions are singular), so they are clamped rather than allowed to become NaN.
at::Tensor sqrt_psd(const at::Tensor& m) {
  auto [values, vectors] = at::linalg_eigh(symmetrized(m));       // [F], [F, F]
  return (vectors * values.clamp_min(0).sqrt()).matmul(vectors.t());  // [F, F]: V diag(sqrt w) V^T
}

void check_gaussian(const Gaussian& g, const char* which) {
  if (!g.mean.defined() || !g.cov.defined() || g.mean.dim() != 1 || g.cov.dim() != 2 ||
      g.cov.size(0) != g.mean.size(0) || g.cov.size(1) != g.mean.size(0))
    throw Error(ErrorKind::Usage, std::string("Fréchet distance: Gaussian ") + which +
                                      " needs a mean [F] and a covariance [F, F], got " +
                                      (g.mean.defined() ? c10::str(g.mean.sizes()) : "none") + " and " +
                                      (g.cov.defined() ? c10::str(g.cov.sizes()) : "none"));
}

}  // namespace

Gaussian feature_statistics(const at::Tensor& features) {
  if (!features.defined() || features.dim() != 2)
    throw Error(ErrorKind::Usage, "feature statistics need features [N, F], got " +
                                      (features.defined() ? c10::str(features.sizes()) : std::string("none")));
  const int64_t n = features.size(0);
  if (n < 2) throw Error(ErrorKind::Usage, "feature statistics need at least 2 samples, got " + std::to_string(n));
  at::Tensor x = features.to(at::kCPU, at::kDouble);  // [N, F]
  if (!at::isfinite(x).all().item<bool>())
    throw Error(ErrorKind::Runtime, "feature statistics: the features hold NaN or infinite values");
  at::Tensor mean = x.mean(0);                                            // [F]
  at::Tensor centred = x - mean;                                          // [N, F]
  at::Tensor cov = centred.t().matmul(centred) / static_cast<double>(n - 1);  // [F, F]
  return {mean, cov};
}

double frechet_distance(const Gaussian& a, const Gaussian& b) {
  check_gaussian(a, "a");
  check_gaussian(b, "b");
  if (a.mean.size(0) != b.mean.size(0))
    throw Error(ErrorKind::Usage, "Fréchet distance between " + std::to_string(a.mean.size(0)) + "- and " +
                                      std::to_string(b.mean.size(0)) + "-dimensional Gaussians");
  const at::Tensor ma = a.mean.to(at::kCPU, at::kDouble), mb = b.mean.to(at::kCPU, at::kDouble);  // [F]
  const at::Tensor ca = a.cov.to(at::kCPU, at::kDouble), cb = b.cov.to(at::kCPU, at::kDouble);    // [F, F]
  for (const at::Tensor& t : {ma, mb, ca, cb})
    if (!at::isfinite(t).all().item<bool>())
      throw Error(ErrorKind::Runtime, "Fréchet distance: a Gaussian holds NaN or infinite values");
  const at::Tensor diff = ma - mb;                                                                  // [F]
  // tr((Ca Cb)^1/2) as tr((Ca^1/2 Cb Ca^1/2)^1/2): the same eigenvalues, but of a symmetric PSD matrix,
  // so no complex square roots of a non-symmetric product.
  const at::Tensor root_a = sqrt_psd(ca);                                            // [F, F]
  const at::Tensor inner = symmetrized(root_a.matmul(cb).matmul(root_a));            // [F, F]
  const at::Tensor root_eigenvalues = at::linalg_eigvalsh(inner).clamp_min(0).sqrt();  // [F]
  const double distance = diff.dot(diff).item<double>() + ca.trace().item<double>() + cb.trace().item<double>() -
                          2 * root_eigenvalues.sum().item<double>();
  // A squared distance; equal Gaussians can land a rounding error below zero.
  return std::max(distance, 0.0);
}

}  // namespace ditgen::eval
