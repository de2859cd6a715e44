#include "ditgen/sampling/guidance.h"

#include <cmath>
#include <string>

#include <c10/util/StringUtil.h>

#include "ditgen/core/device.h"
#include "ditgen/core/error.h"
#include "ditgen/text/tokenizer.h"

namespace ditgen::sampling {

void validate_guidance(const Guidance& g, const DiTConfig& c) {
  if (!std::isfinite(g.scale))
    throw Error(ErrorKind::Usage, "cfg scale must be a finite number, got " + c10::str(g.scale));
  if (g.channels < 0 || g.channels > c.in_channels)
    throw Error(ErrorKind::Usage, "cfg channels must be in 0.." + std::to_string(c.in_channels) + " (0 = all)");
  if (c.text.enabled() && g.negative_label != -1)
    throw Error(ErrorKind::Usage, "a text model takes a negative prompt, not a negative class id");
  if (!c.text.enabled() && (g.negative_label < -1 || g.negative_label >= c.num_classes))
    throw Error(ErrorKind::Usage, "negative class id " + std::to_string(g.negative_label) + " is out of range 0.." +
                                      std::to_string(c.num_classes - 1));
  if (g.scale != 1.0 && !c.has_null_class() && g.negative_label < 0)
    throw Error(ErrorKind::Usage, "this model was trained without a null class, so it cannot use "
                                  "classifier-free guidance; use a cfg scale of 1");
}

namespace {

// uncond + scale (cond - uncond) on the first `channels` eps channels; the rest from cond.
at::Tensor combine(const at::Tensor& cond, const at::Tensor& uncond, double scale, int64_t channels) {
  at::Tensor guided = uncond.narrow(1, 0, channels) + scale * (cond.narrow(1, 0, channels) - uncond.narrow(1, 0, channels));
  return at::cat({guided, cond.narrow(1, channels, cond.size(1) - channels)}, 1);  // [B, Cout, H, W]
}

}  // namespace

at::Tensor unconditional(const DiTConfig& c, const Guidance& g, int64_t batch, const at::TensorOptions& options,
                         const at::Tensor& negative_ids) {
  const at::TensorOptions ids = options.dtype(at::kLong);
  if (!c.text.enabled()) return at::full({batch}, g.negative_label >= 0 ? g.negative_label : c.num_classes, ids);  // [B]
  if (negative_ids.defined()) return negative_ids.to(ids.device()).unsqueeze(0).expand({batch, -1}).contiguous();  // [B, L]
  at::Tensor empty = at::full({batch, c.text.max_tokens}, text::kPadId, ids);  // [B, L]
  empty.select(1, 0).fill_(text::kStartId);
  return empty;
}

at::Tensor guided_output(DiT& model, const at::Tensor& x, const at::Tensor& t, const at::Tensor& y,
                         const at::Tensor& null_y, const Guidance& g, const schedule::StepPlan& plan,
                         BranchExchange* exchange) {
  if (g.scale == 1.0) return model->forward(x, t, y, plan.cond_patch, plan.sparse_grid);  // [B, Cout, H, W]
  const DiTConfig& c = model->config();
  const int64_t B = x.size(0), n = g.channels == 0 ? c.in_channels : g.channels;
  // The guidance branch: in a weak-guidance step the conditional prediction at the larger patch, scaled by
  // weak_scale; else the unconditional one, scaled by a plan's cfg_scale (a schedule may guide weak steps
  // harder) or the request's.
  const at::Tensor& guide_y = plan.weak_guidance ? y : null_y;
  const double scale = plan.weak_guidance ? g.weak_scale : plan.cfg_scale > 0 ? plan.cfg_scale : g.scale;
  auto cond_branch = [&] { return model->forward(x, t, y, plan.cond_patch, plan.sparse_grid); };         // [B, Cout, H, W]
  auto guide_branch = [&] { return model->forward(x, t, guide_y, plan.guide_patch, plan.sparse_grid); };  // [B, Cout, H, W]
  if (exchange) {
    auto [cond, guide] = exchange->exchange(exchange->branch() == 0 ? cond_branch() : guide_branch());
    return combine(cond, guide, scale, n);
  }
  if (plan.weak_guidance || plan.cond_patch != plan.guide_patch) {
    auto [cond, guide] = run_side_by_side(x.device(), cond_branch, guide_branch);
    return combine(cond, guide, scale, n);
  }
  at::Tensor out = model->forward(at::cat({x, x}), at::cat({t, t}), at::cat({y, guide_y}), plan.cond_patch,
                                  plan.sparse_grid);  // [2B, ...]
  return combine(out.narrow(0, 0, B), out.narrow(0, B, B), scale, n);  // [B, Cout, H, W]
}

}  // namespace ditgen::sampling
