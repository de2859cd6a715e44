#include "ditgen/sampling/denoise.h"

#include "ditgen/sampling/frame_noise.h"

namespace ditgen::sampling {

at::Tensor NoiseSource::draw(at::IntArrayRef shape) {
  const double correlation = shape.size() == 4 ? frame_correlation : 0;  // clips only
  std::vector<at::Tensor> noise;
  noise.reserve(generators.size());
  for (auto& g : generators) noise.push_back(frame_noise(shape, g, correlation));  // [C, (F,) H, W]
  return at::stack(noise);                                                          // [B, C, (F,) H, W]
}

StepFn model_step(ModelFn model, const Sampler& sampler) {
  return [model = std::move(model), &sampler](const at::Tensor& x, int k, const at::Tensor& noise) {
    at::Tensor t = at::full({x.size(0)}, sampler.model_timestep(k), x.options());  // [B]
    return sampler.step(x, model(x, t, k), k, noise);                               // [B, C, H, W]
  };
}

at::Tensor denoise(const StepFn& step, const Sampler& sampler, at::Tensor x, NoiseSource& noise,
                   const DenoiseHooks& hooks) {
  const int total = sampler.steps();
  const std::vector<int64_t> shape = x.sizes().slice(1).vec();  // [C, (F,) H, W]
  if (hooks.on_state) hooks.on_state(x);
  for (int k = 0; k < total; ++k) {
    if (hooks.cancelled && hooks.cancelled()) return {};
    at::Tensor step_noise = sampler.needs_noise() ? noise.draw(shape).to(x.device()) : at::Tensor();
    x = step(x, k, step_noise);  // [B, C, (F,) H, W]
    if (hooks.on_state) hooks.on_state(x);
    if (hooks.on_step) hooks.on_step(k + 1, total);
  }
  return x;
}

}  // namespace ditgen::sampling
