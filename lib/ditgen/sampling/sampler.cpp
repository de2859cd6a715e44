#include "ditgen/sampling/sampler.h"

#include <algorithm>

#include <c10/util/StringUtil.h>

#include "ditgen/core/error.h"
#include "ditgen/sampling/flow_matching.h"
#include "ditgen/sampling/gaussian_diffusion.h"

namespace ditgen::sampling {

namespace {

class DiffusionSampler : public Sampler {
 public:
  DiffusionSampler(const SamplerOptions& o, const DiTConfig& c)
      : diffusion_(c.diffusion_steps, o.steps, c.learn_sigma ? VarianceType::LearnedRange : VarianceType::FixedLarge),
        ddim_(o.name == "ddim"),
        eta_(o.eta) {}
  int steps() const override { return diffusion_.steps(); }
  // Sampling runs from the last kept timestep down; the model sees the original timestep.
  double model_timestep(int k) const override {
    return static_cast<double>(diffusion_.timestep_map()[steps() - 1 - k]);
  }
  bool needs_noise() const override { return !ddim_ || eta_ > 0; }
  at::Tensor step(const at::Tensor& x, const at::Tensor& out, int k, const at::Tensor& noise) const override {
    const int i = steps() - 1 - k;
    return ddim_ ? diffusion_.ddim_step(x, out, i, eta_, noise) : diffusion_.ddpm_step(x, out, i, noise);
  }
  std::vector<float> step_scalars(int k) const override {
    const int i = steps() - 1 - k;
    if (ddim_) {
      const DdimScalars<float> s = diffusion_.ddim_scalars(i, eta_);
      return {s.x0_from_x, s.x0_from_eps, s.sqrt_alpha_prev, s.eps_coef, s.sigma};
    }
    const DdpmScalars<float> s = diffusion_.ddpm_scalars(i);
    return {s.x0_from_x, s.x0_from_eps, s.coef_x0, s.coef_x, s.log_var_max, s.log_var_min, s.noise_scale};
  }
  at::Tensor step_with(const at::Tensor& x, const at::Tensor& out, const at::Tensor& v,
                       const at::Tensor& noise) const override {
    if (ddim_) return ddim_update(x, out, DdimScalars<at::Tensor>{v[0], v[1], v[2], v[3], v[4]}, noise);
    return ddpm_update(x, out, DdpmScalars<at::Tensor>{v[0], v[1], v[2], v[3], v[4], v[5], v[6]},
                       diffusion_.variance(), noise);
  }

 private:
  GaussianDiffusion diffusion_;
  bool ddim_;
  double eta_;
};

class EulerSampler : public Sampler {
 public:
  explicit EulerSampler(int steps) : flow_(steps) {}
  int steps() const override { return flow_.steps(); }
  double model_timestep(int k) const override { return flow_.model_timestep(k); }
  bool needs_noise() const override { return false; }
  at::Tensor step(const at::Tensor& x, const at::Tensor& out, int k, const at::Tensor&) const override {
    return flow_.step(x, out.narrow(1, 0, x.size(1)), k);
  }
  std::vector<float> step_scalars(int k) const override { return {flow_.step_size(k)}; }
  at::Tensor step_with(const at::Tensor& x, const at::Tensor& out, const at::Tensor& v,
                       const at::Tensor&) const override {
    return x + v[0] * out.narrow(1, 0, x.size(1));  // [B, C, H, W]
  }

 private:
  FlowEuler flow_;
};

std::string join(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

}  // namespace

std::vector<std::string> sampler_names(Objective objective) {
  return objective == Objective::Eps ? std::vector<std::string>{"ddim", "ddpm"} : std::vector<std::string>{"euler"};
}

std::unique_ptr<Sampler> make_sampler(const SamplerOptions& options, const DiTConfig& config) {
  const auto names = sampler_names(config.objective);
  if (std::find(names.begin(), names.end(), options.name) == names.end())
    throw Error(ErrorKind::Usage, "sampler '" + options.name + "' does not fit this " +
                                      objective_name(config.objective) + " model; use one of: " + join(names));
  if (options.steps < 1) throw Error(ErrorKind::Usage, "steps must be >= 1, got " + std::to_string(options.steps));
  if (!(options.eta >= 0 && options.eta <= 1))  // NaN fails both
    throw Error(ErrorKind::Usage, "eta must be in 0..1 (0 = deterministic DDIM, 1 = DDPM's noise), got " + c10::str(options.eta));
  if (config.objective == Objective::Flow) return std::make_unique<EulerSampler>(options.steps);
  return std::make_unique<DiffusionSampler>(options, config);
}

}  // namespace ditgen::sampling
