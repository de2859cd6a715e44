#include "ditgen/sampling/flow_matching.h"

#include <string>

#include "ditgen/core/error.h"
#include "ditgen/sampling/per_sample.h"

namespace ditgen::sampling {

FlowEuler::FlowEuler(int steps) : steps_(steps) {
  if (steps < 1 || steps > 100000)
    throw Error(ErrorKind::Usage, "steps must be in 1..100000, got " + std::to_string(steps));
}

double FlowEuler::time(int k) const { return 1.0 - static_cast<double>(k) / steps_; }

float FlowEuler::step_size(int k) const { return static_cast<float>(time(k + 1) - time(k)); }

at::Tensor FlowEuler::step(const at::Tensor& x, const at::Tensor& velocity, int k) const {
  return x + step_size(k) * velocity;  // [B, C, H, W]
}

at::Tensor flow_interpolate(const at::Tensor& x0, const at::Tensor& noise, const at::Tensor& t) {
  at::Tensor tt = per_sample(t.to(x0.dtype()), x0.dim());  // [B, 1, ..., 1]
  return (1 - tt) * x0 + tt * noise;                         // [B, C, (F,) H, W]
}

at::Tensor flow_training_loss(const at::Tensor& velocity, const at::Tensor& x0, const at::Tensor& noise) {
  return sample_mean((velocity.narrow(1, 0, x0.size(1)) - (noise - x0)).pow(2));  // [B]
}

}  // namespace ditgen::sampling
