// Rectified flow: x_t = (1 - t) x0 + t noise, the model predicts v = noise - x0 and is called with
// timestep 1000 t; sampling integrates from t = 1 to 0 with Euler steps on a uniform grid.
#pragma once

#include <ATen/ATen.h>

namespace ditgen::sampling {

class FlowEuler {
 public:
  explicit FlowEuler(int steps);
  int steps() const { return steps_; }
  double time(int k) const;        // t_k = 1 - k / steps, k = 0 .. steps
  double model_timestep(int k) const { return 1000.0 * time(k); }
  at::Tensor step(const at::Tensor& x, const at::Tensor& velocity, int k) const;  // x_{k+1} [B, C, H, W]

 private:
  int steps_;
};

}  // namespace ditgen::sampling
