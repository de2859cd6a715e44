// Classifier-free guidance: the conditional and null-class branches run as one doubled batch.
#pragma once

#include <ATen/ATen.h>

#include "ditgen/models/dit.h"
#include "ditgen/schedule/compute_schedule.h"

namespace ditgen::sampling {

struct Guidance {
  double scale = 1.0;  // 1 = conditional model only (one forward, no null branch)
  int channels = 0;    // eps channels guided; 0 = all (the official DiT guides only 3 of its 4)
  int64_t negative_label = -1;  // class of the unconditional branch (a negative prompt); -1 = the null class
  double weak_scale = 1.0;      // FlexiDiT weak-model guidance scale s2, used in steps whose plan says so
};

// Throws Error(Usage) for a scale that is not a finite number, or guidance the model cannot do (no null
// class, too many channels).
void validate_guidance(const Guidance& guidance, const DiTConfig& config);

// Model output with guidance: uncond + scale (cond - uncond) on the guided eps channels; the other eps
// channels and the variance channels come from the conditional branch. Each branch runs at its plan's
// patch size: one doubled batch when they agree, else two forwards side by side on CUDA streams. In a
// weak-guidance step the guidance branch is the conditional prediction at the larger patch, scaled by
// weak_scale (FlexiDiT); a plan's cfg_scale, when set, replaces scale.
// x [B,C,H,W], t [B], y [B] -> [B,Cout,H,W]
at::Tensor guided_output(DiT& model, const at::Tensor& x, const at::Tensor& t, const at::Tensor& y,
                         const Guidance& guidance, const schedule::StepPlan& plan = {});

}  // namespace ditgen::sampling
