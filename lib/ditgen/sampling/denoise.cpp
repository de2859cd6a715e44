#include "ditgen/sampling/denoise.h"

namespace ditgen::sampling {

at::Tensor draw_noise(std::vector<at::Generator>& generators, int64_t channels, int64_t height, int64_t width) {
  std::vector<at::Tensor> noise;
  noise.reserve(generators.size());
  for (auto& g : generators) noise.push_back(at::randn({channels, height, width}, g, at::kFloat));  // [C, H, W]
  return at::stack(noise);                                                                          // [B, C, H, W]
}

at::Tensor denoise(const ModelFn& model, const Sampler& sampler, at::Tensor x, std::vector<at::Generator>& generators,
                   const DenoiseHooks& hooks) {
  const int total = sampler.steps();
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  if (hooks.on_state) hooks.on_state(x);
  for (int k = 0; k < total; ++k) {
    if (hooks.cancelled && hooks.cancelled()) return {};
    at::Tensor t = at::full({B}, sampler.model_timestep(k), x.options());                  // [B]
    at::Tensor out = model(x, t);                                                          // [B, Cout, H, W]
    at::Tensor noise = sampler.needs_noise() ? draw_noise(generators, C, H, W).to(x.device()) : at::Tensor();
    x = sampler.step(x, out, k, noise);                                                    // [B, C, H, W]
    if (hooks.on_state) hooks.on_state(x);
    if (hooks.on_step) hooks.on_step(k + 1, total);
  }
  return x;
}

}  // namespace ditgen::sampling
