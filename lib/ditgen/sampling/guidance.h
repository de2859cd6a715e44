// Classifier-free guidance: the conditional and unconditional (null class, empty or negative prompt)
// branches run as one doubled batch.
#pragma once

#include <utility>

#include <ATen/ATen.h>

#include "ditgen/models/dit.h"
#include "ditgen/schedule/compute_schedule.h"

namespace ditgen::sampling {

struct Guidance {
  double scale = 1.0;  // 1 = conditional model only (one forward, no null branch)
  int channels = 0;    // eps channels guided; 0 = all (the official DiT guides only 3 of its 4)
  int64_t negative_label = -1;  // class models: the unconditional branch's class (a negative prompt); -1 = null class
  double weak_scale = 1.0;      // FlexiDiT weak-model guidance scale s2, used in steps whose plan says so
};

// CFG-parallel generation (dist/cfg_parallel.h): the two branches of a guided step on two processes. This one
// computes branch `branch()` (0: the conditional prediction, 1: the guidance branch) and `exchange` returns
// both outputs, (conditional, guidance), the same in both processes.
class BranchExchange {
 public:
  virtual ~BranchExchange() = default;
  virtual int branch() const = 0;
  virtual std::pair<at::Tensor, at::Tensor> exchange(const at::Tensor& mine) = 0;
};

// Throws Error(Usage) for a scale that is not a finite number, or guidance the model cannot do (no null
// class, too many channels, a negative class for a text model).
void validate_guidance(const Guidance& guidance, const DiTConfig& config);

// The unconditional branch's condition for `batch` images: the negative class or the null class (class
// models: [B]), or for a text model `negative_ids` (a negative prompt's padded ids [L]; undefined = the empty
// prompt, the null condition) -> [B, L]. On `options`' device.
at::Tensor unconditional(const DiTConfig& config, const Guidance& guidance, int64_t batch,
                         const at::TensorOptions& options, const at::Tensor& negative_ids = {});

// Model output with guidance: uncond + scale (cond - uncond) on the guided eps channels; the other eps
// channels and the variance channels come from the conditional branch. Each branch runs at its plan's
// patch size: one doubled batch when they agree, else two forwards side by side on CUDA streams. In a
// weak-guidance step the guidance branch is the conditional prediction at the larger patch, scaled by
// weak_scale (FlexiDiT); a plan's cfg_scale, when set, replaces scale. With `exchange`, this process runs its
// branch only and the other comes from its partner.
// x [B,C,H,W], t [B], y and null_y (unconditional()) [B] or [B, L] -> [B,Cout,H,W]
at::Tensor guided_output(DiT& model, const at::Tensor& x, const at::Tensor& t, const at::Tensor& y,
                         const at::Tensor& null_y, const Guidance& guidance, const schedule::StepPlan& plan = {},
                         BranchExchange* exchange = nullptr);

}  // namespace ditgen::sampling
