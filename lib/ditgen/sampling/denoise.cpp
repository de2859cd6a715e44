#include "ditgen/sampling/denoise.h"

namespace ditgen::sampling {

at::Tensor draw_noise(std::vector<at::Generator>& generators, at::IntArrayRef shape) {
  std::vector<at::Tensor> noise;
  noise.reserve(generators.size());
  for (auto& g : generators) noise.push_back(at::randn(shape, g, at::kFloat));  // [C, (F,) H, W]
  return at::stack(noise);                                                      // [B, C, (F,) H, W]
}

StepFn model_step(ModelFn model, const Sampler& sampler) {
  return [model = std::move(model), &sampler](const at::Tensor& x, int k, const at::Tensor& noise) {
    at::Tensor t = at::full({x.size(0)}, sampler.model_timestep(k), x.options());  // [B]
    return sampler.step(x, model(x, t, k), k, noise);                               // [B, C, H, W]
  };
}

at::Tensor denoise(const StepFn& step, const Sampler& sampler, at::Tensor x, std::vector<at::Generator>& generators,
                   const DenoiseHooks& hooks) {
  const int total = sampler.steps();
  const std::vector<int64_t> shape = x.sizes().slice(1).vec();  // [C, (F,) H, W]
  if (hooks.on_state) hooks.on_state(x);
  for (int k = 0; k < total; ++k) {
    if (hooks.cancelled && hooks.cancelled()) return {};
    at::Tensor noise = sampler.needs_noise() ? draw_noise(generators, shape).to(x.device()) : at::Tensor();
    x = step(x, k, noise);  // [B, C, (F,) H, W]
    if (hooks.on_state) hooks.on_state(x);
    if (hooks.on_step) hooks.on_step(k + 1, total);
  }
  return x;
}

}  // namespace ditgen::sampling
