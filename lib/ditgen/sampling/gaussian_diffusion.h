// Linear-beta Gaussian diffusion with timestep respacing, as the official DiT samples it.
// Schedules are computed in float64; each coefficient is rounded to float32 before it meets a tensor,
// exactly as the reference does, so results agree to float32 rounding.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include <ATen/ATen.h>

namespace ditgen::sampling {

// Betas of the official linear schedule: linspace(1e-4, 0.02) scaled to `train_steps`.
std::vector<double> linear_betas(int train_steps);

// The official space_timesteps with one section: `count` evenly spaced timesteps out of `train_steps`,
// rounded half to even, ascending. Throws Error(Usage) when count is not in 1..train_steps.
std::vector<int64_t> space_timesteps(int train_steps, int count);

enum class VarianceType { LearnedRange, FixedLarge };

// The scalars of one sampling step. S is float (eager steps) or a 0-dim tensor on the model's device, so a
// step captured in a CUDA graph reads them from device memory and one capture serves every step.
template <class S>
struct DdimScalars {
  S x0_from_x, x0_from_eps;  // x0 = x0_from_x * x - x0_from_eps * eps
  S sqrt_alpha_prev, eps_coef, sigma;  // x' = sqrt(abar_prev) x0 + eps_coef eps + sigma noise
};
template <class S>
struct DdpmScalars {
  S x0_from_x, x0_from_eps;
  S coef_x0, coef_x;            // posterior mean = coef_x0 x0 + coef_x x
  S log_var_max, log_var_min;   // learned range: interpolated by the model; fixed: log_var_min
  S noise_scale;                // 0 on the last step (no noise), else 1
};

// One DDIM update from the model output (eps channels first); noise is added when defined.
template <class S>
at::Tensor ddim_update(const at::Tensor& x, const at::Tensor& model_out, const DdimScalars<S>& s,
                       const at::Tensor& noise);
// One ancestral update; noise (when defined) is scaled by the learned or fixed standard deviation.
template <class S>
at::Tensor ddpm_update(const at::Tensor& x, const at::Tensor& model_out, const DdpmScalars<S>& s,
                       VarianceType variance, const at::Tensor& noise);

// The process respaced to a subset of the training timesteps; index i runs over the kept steps, ascending.
class GaussianDiffusion {
 public:
  GaussianDiffusion(int train_steps, int sample_steps, VarianceType variance);

  int steps() const { return static_cast<int>(timestep_map_.size()); }
  const std::vector<int64_t>& timestep_map() const { return timestep_map_; }
  const std::vector<double>& betas() const { return betas_; }
  VarianceType variance() const { return variance_; }

  // Step scalars at kept index i, rounded to float32 as the reference rounds them.
  DdimScalars<float> ddim_scalars(int i, double eta) const;
  DdpmScalars<float> ddpm_scalars(int i) const;

  // One ancestral (DDPM) step with the learned or fixed variance; `noise` is used unless i == 0.
  at::Tensor ddpm_step(const at::Tensor& x, const at::Tensor& model_out, int i, const at::Tensor& noise) const;
  // One DDIM step with stochasticity eta; `noise` is needed only when eta > 0 and i > 0.
  at::Tensor ddim_step(const at::Tensor& x, const at::Tensor& model_out, int i, double eta,
                       const at::Tensor& noise) const;

  // Training (indices i are per sample, int64 [B]): x_i = sqrt(acp) x0 + sqrt(1 - acp) noise.
  at::Tensor q_sample(const at::Tensor& x0, const at::Tensor& i, const at::Tensor& noise) const;
  // The official hybrid loss per sample [B]: MSE on eps, plus (learned sigma) the variational bound in bits
  // with the eps prediction frozen, so the bound trains only the variance.
  at::Tensor training_loss(const at::Tensor& model_out, const at::Tensor& x0, const at::Tensor& x_t,
                           const at::Tensor& i, const at::Tensor& noise) const;

 private:
  // table[i] per sample, rounded to float32 after the float64 lookup, shaped [B, 1, ..., 1] (`dims` in all).
  at::Tensor lookup(const std::vector<double>& table, const at::Tensor& i, int64_t dims) const;

  std::vector<int64_t> timestep_map_;
  std::vector<double> betas_, alphas_cumprod_, alphas_cumprod_prev_;
  std::vector<double> sqrt_acp_, sqrt_one_minus_acp_, log_betas_, sqrt_recip_acp_, sqrt_recipm1_acp_;
  std::vector<double> posterior_log_var_clipped_, coef1_, coef2_;
  std::vector<double> fixed_log_var_;
  VarianceType variance_;
  // The tables lookup() used, copied to the device once (training looks up about 8 a step). A copy of
  // the diffusion starts with an empty cache, since the keys are this object's members.
  struct DeviceTables {
    std::map<const std::vector<double>*, at::Tensor> tensors;
    DeviceTables() = default;
    DeviceTables(const DeviceTables&) {}
    DeviceTables& operator=(const DeviceTables&) {
      tensors.clear();
      return *this;
    }
  };
  mutable DeviceTables device_tables_;
};

}  // namespace ditgen::sampling
