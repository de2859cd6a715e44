#include "ditgen/pipeline/cost_report.h"

#include <cmath>

#include "ditgen/models/cost.h"
#include "ditgen/pipeline/generator.h"
#include "ditgen/sampling/sampler.h"

namespace ditgen {

CostReport cost_report(const ModelInfo& model, const CostQuery& q) {
  const DiTConfig& c = model.config;
  CostReport r;
  std::tie(r.height, r.width) = run_size(c, q.height, q.width);
  const int h = r.height, w = r.width, f = c.input_frames;  // a video model's figures are per clip
  r.steps = q.steps > 0 ? q.steps : model.sampler_defaults.steps;
  sampling::make_sampler({model.sampler_defaults.sampler, r.steps}, c);  // steps in the model's range
  if (!std::isfinite(q.cfg_scale)) throw Error(ErrorKind::Usage, "cfg scale must be a finite number");
  q.schedule.validate(c, h, w, r.steps);
  r.parameters = dit_parameter_count(c);
  r.tokens = static_cast<int64_t>(f) * (h / c.patch_size) * (w / c.patch_size);
  r.gflops_per_forward = dit_gflops(c, h, w, 0, false, 0, f);
  if (c.flex.flexible())
    for (int p : c.runnable_patches())
      if (h % p == 0 && w % p == 0) r.gflops_per_forward_by_patch[p] = dit_gflops(c, h, w, p);
  if (c.sparse.sparse())
    for (int g = c.sparse.min_grid; g <= c.sparse.max_grid; ++g)
      r.gflops_per_forward_by_grid[g] = dit_gflops(c, h, w, 0, false, g);
  r.schedule = q.schedule.text();
  r.guided = (q.cfg_scale > 0 ? q.cfg_scale : model.sampler_defaults.cfg_scale) != 1.0;
  r.gflops_per_step = schedule::step_gflops(c, h, w, q.schedule, r.steps, r.guided, false, f);
  DiTConfig dense = c;
  dense.sparse = {};
  for (double g : schedule::step_gflops(dense, h, w, schedule::ComputeSchedule(), r.steps, r.guided, false, f))
    r.dense_gflops_per_image += g;
  for (double g : r.gflops_per_step) r.gflops_per_image += g;
  if (c.sparse.sparse())
    for (int k = 0; k < r.steps; ++k) r.sparse_grid_per_step.push_back(q.schedule.plan(k, r.steps, c, r.guided).sparse_grid);
  return r;
}

nlohmann::json CostReport::to_json() const {
  auto by_key = [](const std::map<int, double>& m) {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& [k, v] : m) j[std::to_string(k)] = v;
    return j;
  };
  nlohmann::json j{{"parameters", parameters},
                   {"tokens", tokens},
                   {"size", {height, width}},
                   {"gflops_per_forward", gflops_per_forward},
                   {"generation", {{"schedule", schedule}, {"steps", steps}, {"guided", guided},
                                   {"gflops_per_step", gflops_per_step}, {"gflops_per_image", gflops_per_image},
                                   {"dense_gflops_per_image", dense_gflops_per_image},
                                   {"fraction_of_dense", gflops_per_image / dense_gflops_per_image}}}};
  if (!gflops_per_forward_by_patch.empty()) j["gflops_per_forward_by_patch"] = by_key(gflops_per_forward_by_patch);
  if (!gflops_per_forward_by_grid.empty()) {
    j["gflops_per_forward_by_grid"] = by_key(gflops_per_forward_by_grid);
    j["generation"]["sparse_grid_per_step"] = sparse_grid_per_step;
  }
  return j;
}

}  // namespace ditgen
