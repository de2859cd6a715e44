// What running a model costs, from its description alone (no weights): parameters, GFLOPs per forward,
// per denoising step and per image under a compute schedule, against the dense baseline. `ditgen info`
// prints it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ditgen/models/model_file.h"
#include "ditgen/schedule/compute_schedule.h"

namespace ditgen {

struct CostQuery {
  int height = 0, width = 0;  // model units (pixels or latents); 0 = the model's own
  schedule::ComputeSchedule schedule;
  int steps = 0;              // sampling steps; 0 = the model's default
  double cfg_scale = 0;       // 0 = the model's default; 1 = the conditional branch only
};

// MAC GFLOPs (the DiT papers' convention) of one image.
struct CostReport {
  int height = 0, width = 0;
  int64_t parameters = 0;
  int64_t tokens = 0;                                 // at the model's own patch size
  double gflops_per_forward = 0;                      // one forward (a sparse model at its densest grid)
  std::map<int, double> gflops_per_forward_by_patch;  // flexible models: each patch size that divides the size
  std::map<int, double> gflops_per_forward_by_grid;   // sparse models: each grid they were trained for
  std::string schedule;                               // canonical shorthand
  int steps = 0;
  bool guided = false;                                // two branches a step
  std::vector<double> gflops_per_step;
  std::vector<int> sparse_grid_per_step;              // sparse models
  double gflops_per_image = 0;                        // their sum
  // Every step at full compute; for a sparse model, the dense DiT of the same depth.
  double dense_gflops_per_image = 0;

  // {parameters, tokens, size, gflops_per_forward, gflops_per_forward_by_patch/_by_grid (flexible/sparse
  // models), generation: {schedule, steps, guided, gflops_per_step, gflops_per_image, dense_gflops_per_image,
  // fraction_of_dense, sparse_grid_per_step (sparse models)}}
  nlohmann::json to_json() const;
};

// Error(Usage) for a size the model cannot run or a schedule it cannot follow at that size.
CostReport cost_report(const ModelInfo& model, const CostQuery& query);

}  // namespace ditgen
