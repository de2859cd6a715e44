// Per-sample arithmetic that holds for images [B, C, H, W] and clips [B, C, F, H, W] alike.
#pragma once

#include <vector>

#include <ATen/ATen.h>

namespace ditgen::sampling {

// One value a sample shaped to broadcast over a batch of `dims` dimensions. [B] -> [B, 1, ..., 1]
inline at::Tensor per_sample(const at::Tensor& values, int64_t dims) {
  std::vector<int64_t> shape(static_cast<size_t>(dims), 1);
  shape[0] = -1;
  return values.view(shape);
}

// The mean over everything but the batch dimension. [B, ...] -> [B]
inline at::Tensor sample_mean(const at::Tensor& x) { return x.flatten(1).mean(1); }

}  // namespace ditgen::sampling
