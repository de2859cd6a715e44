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
  float step_size(int k) const;  // t_{k+1} - t_k, negative: towards the data
  at::Tensor step(const at::Tensor& x, const at::Tensor& velocity, int k) const;  // x_{k+1} [B, C, H, W]

 private:
  int steps_;
};

// Training: the point at time t [B] (in [0, 1]) on the straight path from x0 to noise. [B, C, H, W]
at::Tensor flow_interpolate(const at::Tensor& x0, const at::Tensor& noise, const at::Tensor& t);
// Per-sample [B] mean squared error of the predicted velocity against noise - x0.
at::Tensor flow_training_loss(const at::Tensor& velocity, const at::Tensor& x0, const at::Tensor& noise);

}  // namespace ditgen::sampling
