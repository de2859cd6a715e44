// Fréchet distance between Gaussian fits of feature sets (the FID of Heusel et al., on whatever features
// the caller extracts; ditgen uses its Fashion-MNIST classifier's).
#pragma once

#include <ATen/ATen.h>

namespace ditgen::eval {

struct Gaussian {
  at::Tensor mean;  // [F] float64, CPU
  at::Tensor cov;   // [F, F] float64, CPU, the unbiased (N - 1) estimate
};

// Mean and covariance of features [N, F] (any float dtype or device). Throws Error(Usage) for a tensor that
// is not 2-D or has N < 2, Error(Runtime) for non-finite features.
Gaussian feature_statistics(const at::Tensor& features);

// ||mu_a - mu_b||^2 + tr(Ca + Cb - 2 (Ca^1/2 Cb Ca^1/2)^1/2), in float64 through symmetric eigen
// decompositions. Throws Error(Usage) when the dimensions differ or the shapes are not [F] and [F, F],
// Error(Runtime) for non-finite statistics.
double frechet_distance(const Gaussian& a, const Gaussian& b);

}  // namespace ditgen::eval
