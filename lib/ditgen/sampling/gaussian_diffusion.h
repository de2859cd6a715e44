// Linear-beta Gaussian diffusion with timestep respacing, as the official DiT samples it.
// Schedules are computed in float64; each coefficient is rounded to float32 before it meets a tensor,
// exactly as the reference does, so results agree to float32 rounding.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/ATen.h>

namespace ditgen::sampling {

// Betas of the official linear schedule: linspace(1e-4, 0.02) scaled to `train_steps`.
std::vector<double> linear_betas(int train_steps);

// The official space_timesteps with one section: `count` evenly spaced timesteps out of `train_steps`,
// rounded half to even, ascending. Throws Error(Usage) when count is not in 1..train_steps.
std::vector<int64_t> space_timesteps(int train_steps, int count);

enum class VarianceType { LearnedRange, FixedLarge };

// The process respaced to a subset of the training timesteps; index i runs over the kept steps, ascending.
class GaussianDiffusion {
 public:
  GaussianDiffusion(int train_steps, int sample_steps, VarianceType variance);

  int steps() const { return static_cast<int>(timestep_map_.size()); }
  const std::vector<int64_t>& timestep_map() const { return timestep_map_; }
  const std::vector<double>& betas() const { return betas_; }

  // x0 predicted from x_t and the eps channels of the model output. [B, C, H, W]
  at::Tensor predict_xstart(const at::Tensor& x, const at::Tensor& eps, int i) const;
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
  // table[i] per sample, rounded to float32 after the float64 lookup, shaped [B, 1, 1, 1].
  at::Tensor lookup(const std::vector<double>& table, const at::Tensor& i) const;

  std::vector<int64_t> timestep_map_;
  std::vector<double> betas_, alphas_cumprod_, alphas_cumprod_prev_;
  std::vector<double> sqrt_acp_, sqrt_one_minus_acp_, log_betas_, sqrt_recip_acp_, sqrt_recipm1_acp_;
  std::vector<double> posterior_log_var_clipped_, coef1_, coef2_;
  std::vector<double> fixed_log_var_;
  VarianceType variance_;
};

}  // namespace ditgen::sampling
