// Samplers behind one interface, so the denoising loop does not care which one runs.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "ditgen/models/config.h"

namespace ditgen::sampling {

struct SamplerOptions {
  std::string name = "ddim";  // ddpm | ddim (Gaussian-diffusion models) | euler (flow models)
  int steps = 50;
  double eta = 0.0;           // DDIM stochasticity, 0..1
};

class Sampler {
 public:
  virtual ~Sampler() = default;
  virtual int steps() const = 0;
  // Timestep passed to the model at step k (k = 0 is the noisiest).
  virtual double model_timestep(int k) const = 0;
  // Whether step k consumes fresh Gaussian noise (drawn per image, in step order, on every step).
  virtual bool needs_noise() const = 0;
  // x after step k given the model output (guided) at x. `noise` is undefined when needs_noise() is false.
  virtual at::Tensor step(const at::Tensor& x, const at::Tensor& model_out, int k, const at::Tensor& noise) const = 0;

  // The scalars step k uses. With step_with() they let one CUDA-graph capture serve every step: the
  // scalars of all steps are uploaded once and copied into the graph's input before each replay.
  virtual std::vector<float> step_scalars(int k) const = 0;
  // step() with step_scalars(k) given as a float tensor [n] on x's device; `noise` is defined exactly when
  // needs_noise() (a step that adds none gets a zero coefficient instead of a branch).
  virtual at::Tensor step_with(const at::Tensor& x, const at::Tensor& model_out, const at::Tensor& scalars,
                               const at::Tensor& noise) const = 0;
};

// Names the samplers accept for models of this objective.
std::vector<std::string> sampler_names(Objective objective);

// Builds a sampler for a model; throws Error(Usage) for an unknown name, a sampler that does not fit the
// model's objective, steps out of range or an eta outside 0..1 (NaN included).
std::unique_ptr<Sampler> make_sampler(const SamplerOptions& options, const DiTConfig& config);

}  // namespace ditgen::sampling
