// Compute schedules: which patch size each denoising step runs with, per CFG branch (FlexiDiT,
// docs/FLEXIDIT.md), and which sparse token grid (SparseDiT's density schedule, density_schedule.h), from a
// short string or a YAML preset, and what a schedule costs in GFLOPs.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "ditgen/models/config.h"
#include "ditgen/schedule/density_schedule.h"

namespace ditgen::schedule {

// What one denoising step runs.
struct StepPlan {
  int cond_patch = 0;          // patch size of the conditional branch (0 = the model's own)
  int guide_patch = 0;         // patch size of the guidance branch (unconditional, or the weak model)
  bool weak_guidance = false;  // FlexiDiT's guidance: the conditional weak prediction replaces the unconditional
  double cfg_scale = 0;        // CFG scale of this step; 0 = the request's
  int sparse_grid = 0;         // S of a sparse model's modules (S x S tokens); 0 for a dense model
  bool operator==(const StepPlan& o) const { return key() == o.key(); }
  bool operator<(const StepPlan& o) const { return key() < o.key(); }

 private:
  std::tuple<int, int, bool, double, int> key() const {
    return {cond_patch, guide_patch, weak_guidance, cfg_scale, sparse_grid};
  }
};

// One patch size for the steps before a fraction of the run: steps k < round(until * K) (k = 0 noisiest).
struct Phase {
  int patch = 0;
  double until = 0;
};

class ComputeSchedule {
 public:
  // The dense schedule: the model's own patch size at every step.
  ComputeSchedule() = default;

  // Parses the shorthand (docs/FLEXIDIT.md): comma-separated items
  //   dense                     every step at the model's own patch size
  //   weak=P:F[+P:F...]         patch P for the first fraction F of the steps (F in [0, 1] or "40%"), both
  //                             branches; later phases continue where earlier ones end
  //   cond=...  guide=...       the same for one branch (the conditional, or the guidance branch)
  //   guidance=weak|null        in steps whose conditional patch is smaller than the guidance patch: FlexiDiT's
  //                             weak-model guidance (default) or the null class at the larger patch
  //   weak-scale=S              the weak-guidance scale (default from the paper's rule, weak_guidance_scale)
  //   weak-cfg=S                the CFG scale of steps whose conditional branch runs at a patch larger than
  //                             the model's (FlexiDiT: weak models want stronger guidance); default: the run's
  //   density=MIN:MAX           a sparse model's grid S: MIN x MIN tokens for the first quarter of the steps,
  //                             then linearly up to MAX x MAX at the last (Density); default: the model's range
  //   density-hold=F            the fraction held at MIN (default 0.25)
  //   grid=S                    a fixed sparse grid (density=S:S)
  // Error(Usage) naming the bad item.
  static ComputeSchedule parse(const std::string& text);
  // Reads a YAML preset (keys: description, both, cond, guide as lists of {patch, until}, guidance,
  // weak_scale, weak_cfg, density as {min, max, hold}, grid). Error(Input) for an unreadable or invalid file.
  static ComputeSchedule load_yaml(const std::filesystem::path& path);

  // The plan of step k of `steps` for `model`, guided or not (a sparse model without a density in the
  // schedule follows its own range, config.sparse.min_grid to max_grid).
  StepPlan plan(int k, int steps, const DiTConfig& model, bool guided) const;
  // Error(Usage) when a patch size is one the model does not run or does not divide height x width, or the
  // sparse grid of one of `steps` steps does not fit the token grid of that step's patch sizes or the model has
  // no sparse layout, or a PT-DiT's windows do not divide a token grid the run makes.
  void validate(const DiTConfig& config, int height, int width, int steps) const;
  // Whether every step runs the model's full compute (its own patch size; a sparse model still follows
  // its default density).
  bool dense() const { return cond_.empty() && guide_.empty() && !density_; }
  // Canonical shorthand ("dense" for the dense schedule); parse(text()) gives the same schedule.
  std::string text() const;
  // The scale s2 of weak-model guidance for a CFG scale s1: the override, or the paper's rule.
  double weak_scale(double cfg_scale) const;
  const std::string& description() const { return description_; }

 private:
  std::vector<Phase> cond_, guide_;
  bool weak_guidance_ = true;
  std::optional<double> weak_scale_;
  std::optional<double> weak_cfg_;
  std::optional<Density> density_;
  std::string description_;
};

// A schedule from what a user typed: a YAML file (an existing path, or a name ending in .yaml/.yml), a
// preset name (NAME.yaml in one of `preset_dirs`, first match), or the shorthand. Errors as parse/load_yaml.
ComputeSchedule resolve_schedule(const std::string& spec, const std::vector<std::filesystem::path>& preset_dirs);
// The preset names (file stems) found in `preset_dirs`, sorted, for help and messages.
std::vector<std::string> preset_names(const std::vector<std::filesystem::path>& preset_dirs);

// FlexiDiT's rule (1 - s1) / (1 - s2) = 2.5 for the weak-guidance scale s2 matching a CFG scale s1.
double weak_guidance_scale(double cfg_scale);

// MAC GFLOPs of one image's forward passes at each step (both branches when guided).
std::vector<double> step_gflops(const DiTConfig& config, int height, int width, const ComputeSchedule& schedule,
                                int steps, bool guided, bool lora_merged = false, int frames = 1);

}  // namespace ditgen::schedule
