// The denoising loop: noise in, sample out, one sampler step per model evaluation.
#pragma once

#include <functional>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/core/Generator.h>

#include "ditgen/sampling/sampler.h"

namespace ditgen::sampling {

// The (guided) model: x [B, C, H, W], timesteps [B] and the step index k (for models whose computation
// changes per step: compute schedules) -> output [B, Cout, H, W].
using ModelFn = std::function<at::Tensor(const at::Tensor& x, const at::Tensor& t, int k)>;
// One sampler step: the state x at step k, and that step's noise (defined when the sampler needs noise)
// -> the state after the step.
using StepFn = std::function<at::Tensor(const at::Tensor& x, int k, const at::Tensor& noise)>;

// The plain step: evaluate the model at the step's timestep, then the sampler's update.
StepFn model_step(ModelFn model, const Sampler& sampler);

struct DenoiseHooks {
  std::function<void(int step, int total)> on_step;  // after each step (1-based)
  std::function<bool()> cancelled;                   // checked before each step
  std::function<void(const at::Tensor& x)> on_state;  // the state before the first and after each step
};

// Per-image Gaussian noise: image b draws from its own generator, so an image is the same whatever batch it
// runs in and on whatever device. A clip's frames share `frame_correlation` of theirs (frame_noise.h), as the
// model trained.
struct NoiseSource {
  std::vector<at::Generator> generators;  // one per image
  double frame_correlation = 0;

  // [B, ...shape] (float32, CPU), shape [C, H, W] for images or [C, F, H, W] for clips.
  at::Tensor draw(at::IntArrayRef shape);
};

// Runs the sampler from x (the initial noise, float32 on the model's device). Returns the sample, or an
// undefined tensor when cancelled. Step noise comes from `noise` in step order.
at::Tensor denoise(const StepFn& step, const Sampler& sampler, at::Tensor x, NoiseSource& noise,
                   const DenoiseHooks& hooks = {});

}  // namespace ditgen::sampling
