#include "ditgen/sampling/gaussian_diffusion.h"

#include <cfenv>
#include <cmath>
#include <string>

#include "ditgen/core/error.h"
#include "ditgen/sampling/per_sample.h"

namespace ditgen::sampling {

namespace {
float f32(double v) { return static_cast<float>(v); }
}  // namespace

std::vector<double> linear_betas(int train_steps) {
  const double scale = 1000.0 / train_steps, start = scale * 0.0001, end = scale * 0.02;
  std::vector<double> betas(train_steps);
  for (int i = 0; i < train_steps; ++i)
    betas[i] = train_steps == 1 ? start : start + (end - start) * i / (train_steps - 1);
  return betas;
}

std::vector<int64_t> space_timesteps(int train_steps, int count) {
  if (count < 1 || count > train_steps)
    throw Error(ErrorKind::Usage, "steps must be in 1.." + std::to_string(train_steps) + ", got " +
                                      std::to_string(count));
  const double stride = count == 1 ? 1.0 : static_cast<double>(train_steps - 1) / (count - 1);
  std::vector<int64_t> steps;
  double cur = 0.0;
  std::fesetround(FE_TONEAREST);  // Python's round(): halves go to even
  for (int i = 0; i < count; ++i, cur += stride) steps.push_back(static_cast<int64_t>(std::nearbyint(cur)));
  return steps;
}

GaussianDiffusion::GaussianDiffusion(int train_steps, int sample_steps, VarianceType variance)
    : variance_(variance) {
  const std::vector<double> base = linear_betas(train_steps);
  timestep_map_ = space_timesteps(train_steps, sample_steps);
  // Respaced betas keep alphas_cumprod at the kept timesteps.
  double acp = 1.0, last = 1.0;
  size_t next = 0;
  for (int t = 0; t < train_steps && next < timestep_map_.size(); ++t) {
    acp *= 1.0 - base[t];
    if (t == timestep_map_[next]) {
      betas_.push_back(1.0 - acp / last);
      last = acp;
      ++next;
    }
  }
  const size_t n = betas_.size();
  double prod = 1.0;
  std::vector<double> posterior_var(n);
  for (size_t i = 0; i < n; ++i) {
    alphas_cumprod_prev_.push_back(prod);
    prod *= 1.0 - betas_[i];
    alphas_cumprod_.push_back(prod);
  }
  for (size_t i = 0; i < n; ++i) {
    const double a = alphas_cumprod_[i], ap = alphas_cumprod_prev_[i];
    sqrt_acp_.push_back(std::sqrt(a));
    sqrt_one_minus_acp_.push_back(std::sqrt(1.0 - a));
    log_betas_.push_back(std::log(betas_[i]));
    sqrt_recip_acp_.push_back(std::sqrt(1.0 / a));
    sqrt_recipm1_acp_.push_back(std::sqrt(1.0 / a - 1.0));
    posterior_var[i] = betas_[i] * (1.0 - ap) / (1.0 - a);
    coef1_.push_back(betas_[i] * std::sqrt(ap) / (1.0 - a));
    coef2_.push_back((1.0 - ap) * std::sqrt(1.0 - betas_[i]) / (1.0 - a));
  }
  // The first posterior variance is 0; the official code clips its log by repeating the second.
  for (size_t i = 0; i < n; ++i)
    posterior_log_var_clipped_.push_back(std::log(n > 1 ? posterior_var[i == 0 ? 1 : i] : posterior_var[0]));
  for (size_t i = 0; i < n; ++i)
    fixed_log_var_.push_back(std::log(i == 0 ? (n > 1 ? posterior_var[1] : betas_[0]) : betas_[i]));
}

DdimScalars<float> GaussianDiffusion::ddim_scalars(int i, double eta) const {
  const float ab = f32(alphas_cumprod_[i]), abp = f32(alphas_cumprod_prev_[i]);
  const float sigma = static_cast<float>(eta) * std::sqrt((1 - abp) / (1 - ab)) * std::sqrt(1 - ab / abp);
  return {f32(sqrt_recip_acp_[i]), f32(sqrt_recipm1_acp_[i]), std::sqrt(abp), std::sqrt(1 - abp - sigma * sigma),
          sigma};
}

DdpmScalars<float> GaussianDiffusion::ddpm_scalars(int i) const {
  const bool learned = variance_ == VarianceType::LearnedRange;
  return {f32(sqrt_recip_acp_[i]), f32(sqrt_recipm1_acp_[i]), f32(coef1_[i]), f32(coef2_[i]),
          f32(log_betas_[i]), f32(learned ? posterior_log_var_clipped_[i] : fixed_log_var_[i]), i == 0 ? 0.f : 1.f};
}

namespace {
at::Tensor filled_like(const at::Tensor& x, float v) { return at::full_like(x, v); }
at::Tensor filled_like(const at::Tensor& x, const at::Tensor& v) { return v.expand_as(x); }
}  // namespace

template <class S>
at::Tensor ddim_update(const at::Tensor& x, const at::Tensor& model_out, const DdimScalars<S>& s,
                       const at::Tensor& noise) {
  at::Tensor x0 = s.x0_from_x * x - s.x0_from_eps * model_out.narrow(1, 0, x.size(1));  // [B, C, H, W]
  at::Tensor eps = (s.x0_from_x * x - x0) / s.x0_from_eps;                              // [B, C, H, W]
  at::Tensor out = x0 * s.sqrt_alpha_prev + s.eps_coef * eps;                          // [B, C, H, W]
  if (noise.defined()) out = out + s.sigma * noise;
  return out;
}

template <class S>
at::Tensor ddpm_update(const at::Tensor& x, const at::Tensor& model_out, const DdpmScalars<S>& s,
                       VarianceType variance, const at::Tensor& noise) {
  const int64_t C = x.size(1);
  at::Tensor x0 = s.x0_from_x * x - s.x0_from_eps * model_out.narrow(1, 0, C);  // [B, C, H, W]
  at::Tensor mean = s.coef_x0 * x0 + s.coef_x * x;                              // [B, C, H, W]
  if (!noise.defined()) return mean;
  at::Tensor log_var;                                                            // [B, C, H, W]
  if (variance == VarianceType::LearnedRange) {
    at::Tensor frac = (model_out.narrow(1, C, C) + 1) / 2;
    log_var = frac * s.log_var_max + (1 - frac) * s.log_var_min;
  } else {
    log_var = filled_like(x, s.log_var_min);
  }
  return mean + s.noise_scale * (at::exp(0.5 * log_var) * noise);  // [B, C, H, W]
}

template at::Tensor ddim_update(const at::Tensor&, const at::Tensor&, const DdimScalars<float>&, const at::Tensor&);
template at::Tensor ddim_update(const at::Tensor&, const at::Tensor&, const DdimScalars<at::Tensor>&,
                                const at::Tensor&);
template at::Tensor ddpm_update(const at::Tensor&, const at::Tensor&, const DdpmScalars<float>&, VarianceType,
                                const at::Tensor&);
template at::Tensor ddpm_update(const at::Tensor&, const at::Tensor&, const DdpmScalars<at::Tensor>&, VarianceType,
                                const at::Tensor&);

at::Tensor GaussianDiffusion::ddpm_step(const at::Tensor& x, const at::Tensor& model_out, int i,
                                        const at::Tensor& noise) const {
  return ddpm_update(x, model_out, ddpm_scalars(i), variance_, i == 0 ? at::Tensor() : noise);
}

at::Tensor GaussianDiffusion::ddim_step(const at::Tensor& x, const at::Tensor& model_out, int i, double eta,
                                        const at::Tensor& noise) const {
  const DdimScalars<float> s = ddim_scalars(i, eta);
  return ddim_update(x, model_out, s, i > 0 && s.sigma > 0 ? noise : at::Tensor());
}

at::Tensor GaussianDiffusion::lookup(const std::vector<double>& table, const at::Tensor& i, int64_t dims) const {
  at::Tensor& t = device_tables_.tensors[&table];
  if (!t.defined() || t.device() != i.device())
    t = at::tensor(table, at::TensorOptions().dtype(at::kDouble)).to(i.device());  // [T]
  return per_sample(t.index_select(0, i).to(at::kFloat), dims);                   // [B, 1, ..., 1]
}

at::Tensor GaussianDiffusion::q_sample(const at::Tensor& x0, const at::Tensor& i, const at::Tensor& noise) const {
  const int64_t d = x0.dim();
  return lookup(sqrt_acp_, i, d) * x0 + lookup(sqrt_one_minus_acp_, i, d) * noise;  // [B, C, (F,) H, W]
}

namespace {

// KL(N(m1, e^lv1) || N(m2, e^lv2)) elementwise, in nats.
at::Tensor normal_kl(const at::Tensor& m1, const at::Tensor& lv1, const at::Tensor& m2, const at::Tensor& lv2) {
  return 0.5 * (-1.0 + lv2 - lv1 + at::exp(lv1 - lv2) + (m1 - m2).pow(2) * at::exp(-lv2));
}

// Log-likelihood of 8-bit data x in [-1, 1] under a Gaussian discretised to bins of width 2/255.
at::Tensor discretized_gaussian_log_likelihood(const at::Tensor& x, const at::Tensor& mean, const at::Tensor& log_scale) {
  auto cdf = [](const at::Tensor& v) {  // tanh approximation of the standard normal CDF
    return 0.5 * (1.0 + at::tanh(std::sqrt(2.0 / M_PI) * (v + 0.044715 * v.pow(3))));
  };
  at::Tensor centered = x - mean, inv_std = at::exp(-log_scale);
  at::Tensor cdf_plus = cdf(inv_std * (centered + 1.0 / 255)), cdf_min = cdf(inv_std * (centered - 1.0 / 255));
  at::Tensor log_cdf_plus = at::log(cdf_plus.clamp_min(1e-12));
  at::Tensor log_one_minus_cdf_min = at::log((1.0 - cdf_min).clamp_min(1e-12));
  at::Tensor log_delta = at::log((cdf_plus - cdf_min).clamp_min(1e-12));
  return at::where(x < -0.999, log_cdf_plus, at::where(x > 0.999, log_one_minus_cdf_min, log_delta));
}

}  // namespace

at::Tensor GaussianDiffusion::training_loss(const at::Tensor& model_out, const at::Tensor& x0, const at::Tensor& x_t,
                                            const at::Tensor& i, const at::Tensor& noise) const {
  const int64_t C = x0.size(1), d = x0.dim();
  at::Tensor eps = model_out.narrow(1, 0, C);                                   // [B, C, H, W]
  at::Tensor mse = sample_mean((noise - eps).pow(2));                           // [B]
  if (variance_ != VarianceType::LearnedRange) return mse;
  const at::Tensor min_log = lookup(posterior_log_var_clipped_, i, d), max_log = lookup(log_betas_, i, d);
  at::Tensor frac = (model_out.narrow(1, C, C) + 1) / 2;                        // [B, C, H, W]
  at::Tensor model_log_var = frac * max_log + (1 - frac) * min_log;             // [B, C, H, W]
  at::Tensor x0_pred = lookup(sqrt_recip_acp_, i, d) * x_t - lookup(sqrt_recipm1_acp_, i, d) * eps.detach();
  at::Tensor model_mean = lookup(coef1_, i, d) * x0_pred + lookup(coef2_, i, d) * x_t;   // [B, C, H, W]
  at::Tensor true_mean = lookup(coef1_, i, d) * x0 + lookup(coef2_, i, d) * x_t;         // [B, C, H, W]
  at::Tensor kl = sample_mean(normal_kl(true_mean, min_log, model_mean, model_log_var)) / std::log(2.0);
  at::Tensor nll =
      -sample_mean(discretized_gaussian_log_likelihood(x0, model_mean, 0.5 * model_log_var)) / std::log(2.0);
  at::Tensor vb = at::where(i == 0, nll, kl);                                   // [B]
  return mse + vb;
}

}  // namespace ditgen::sampling
