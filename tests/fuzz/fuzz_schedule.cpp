// Compute schedules: any shorthand string parses or is refused with ditgen::Error; a parsed schedule prints
// a canonical text that parses back to itself and plans every step with a valid patch size and, for a
// sparse model, a sparse grid that never shrinks and, once validated, fits the tokens of its step's patch
// sizes. The same bytes as a YAML preset load or are refused the same way.
#include <algorithm>
#include <string>

#include "ditgen/core/error.h"
#include "ditgen/schedule/compute_schedule.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ditgen;
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const schedule::ComputeSchedule s = schedule::ComputeSchedule::parse(text);
    if (schedule::ComputeSchedule::parse(s.text()).text() != s.text()) __builtin_trap();  // canonical round trip
    DiTConfig sparse;  // 16x16 tokens at patch 2
    sparse.sparse = {1, 1, 3, 1, 2, 12};
    for (int steps : {1, 7, 50}) {
      bool fits = true;
      try {
        s.validate(sparse, 32, 32, steps);
      } catch (const Error&) {
        fits = false;
      }
      int previous_grid = 0;
      for (int k = 0; k < steps; ++k) {
        const schedule::StepPlan p = s.plan(k, steps, DiTConfig{}, true);
        if (p.cond_patch < 1 || p.cond_patch > 16 || p.guide_patch < 1 || p.guide_patch > 16) __builtin_trap();
        if (p.sparse_grid != 0) __builtin_trap();  // a dense model has no grid
        const schedule::StepPlan q = s.plan(k, steps, sparse, true);
        const int grid = q.sparse_grid, side = 32 / std::max(q.cond_patch, q.guide_patch);
        if (grid < 1 || grid > 256 || grid < previous_grid || (fits && grid > side)) __builtin_trap();
        previous_grid = grid;
      }
    }
  } catch (const Error&) {
  }
  try {
    schedule::ComputeSchedule::load_yaml(fuzz::write_scratch(data, size));
  } catch (const Error&) {
  }
  return 0;
}
