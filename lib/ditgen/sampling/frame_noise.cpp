#include "ditgen/sampling/frame_noise.h"

#include <cmath>

#include "ditgen/core/error.h"

namespace ditgen::sampling {

at::Tensor frame_noise(at::IntArrayRef shape, at::Generator& g, double correlation) {
  at::Tensor own = at::randn(shape, g, at::kFloat);  // [..., F, H, W]: first, so correlation 0 draws only this
  if (correlation == 0) return own;
  if (!(correlation > 0 && correlation < 1) || shape.size() < 3)
    throw Error(ErrorKind::Usage, "frame noise needs a correlation in [0, 1) and a [..., F, H, W] shape");
  std::vector<int64_t> one_frame = shape.vec();
  one_frame[one_frame.size() - 3] = 1;
  at::Tensor shared = at::randn(one_frame, g, at::kFloat);                             // [..., 1, H, W]
  return own.mul_(std::sqrt(1 - correlation)).add_(shared, std::sqrt(correlation));   // [..., F, H, W]
}

}  // namespace ditgen::sampling
