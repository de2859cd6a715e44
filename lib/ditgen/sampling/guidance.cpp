#include "ditgen/sampling/guidance.h"

#include <string>

#include "ditgen/core/error.h"

namespace ditgen::sampling {

void validate_guidance(const Guidance& g, const DiTConfig& c) {
  if (g.channels < 0 || g.channels > c.in_channels)
    throw Error(ErrorKind::Usage, "cfg channels must be in 0.." + std::to_string(c.in_channels) + " (0 = all)");
  if (g.negative_label < -1 || g.negative_label >= c.num_classes)
    throw Error(ErrorKind::Usage, "negative class id " + std::to_string(g.negative_label) + " is out of range 0.." +
                                      std::to_string(c.num_classes - 1));
  if (g.scale != 1.0 && !c.has_null_class() && g.negative_label < 0)
    throw Error(ErrorKind::Usage, "this model was trained without a null class, so it cannot use "
                                  "classifier-free guidance; use a cfg scale of 1");
}

at::Tensor guided_output(DiT& model, const at::Tensor& x, const at::Tensor& t, const at::Tensor& y,
                         const Guidance& g) {
  if (g.scale == 1.0) return model->forward(x, t, y);  // [B, Cout, H, W]
  const DiTConfig& c = model->config();
  const int64_t B = x.size(0);
  at::Tensor null_y = at::full_like(y, g.negative_label >= 0 ? g.negative_label : c.num_classes);  // [B]
  at::Tensor out = model->forward(at::cat({x, x}), at::cat({t, t}), at::cat({y, null_y}));  // [2B, Cout, H, W]
  at::Tensor cond = out.narrow(0, 0, B), uncond = out.narrow(0, B, B);                     // [B, Cout, H, W]
  const int64_t n = g.channels == 0 ? c.in_channels : g.channels;
  at::Tensor guided = uncond.narrow(1, 0, n) + g.scale * (cond.narrow(1, 0, n) - uncond.narrow(1, 0, n));
  return at::cat({guided, cond.narrow(1, n, cond.size(1) - n)}, 1);                        // [B, Cout, H, W]
}

}  // namespace ditgen::sampling
