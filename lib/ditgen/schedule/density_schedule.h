// SparseDiT's density schedule (docs/SPARSEDIT.md): which sparse token grid S each denoising step runs, from
// the sparsest early on (the noisiest steps) to the densest at the end.
#pragma once

#include <utility>

namespace ditgen::schedule {

// SparseDiT's temporal density: the sparsest grid min_grid for the first `hold` of the steps (k = 0 the
// noisiest), then linearly denser to max_grid at the last step. Rounds half up:
// k0 = floor(hold * steps + 0.5); S = min for k < k0, else floor(min + (max - min)(k - k0)/(steps - 1 - k0) + 0.5).
struct Density {
  int min_grid = 0, max_grid = 0;
  double hold = 0.25;
  int grid(int k, int steps) const;
  // The grid of the step of a `steps`-step run whose noise level is `level` (1 = pure noise at k = 0,
  // 0 = clean at the last step): for training at the grids inference will use.
  int grid_at_noise(double level, int steps = 50) const;
  // The noise levels [lo, hi] that grid_at_noise gives `grid` (one interval: grids grow as the noise falls), up
  // to the rounding at its ends; empty (lo > hi) when no step runs at that grid.
  std::pair<double, double> noise_range(int grid, int steps = 50) const;
};

}  // namespace ditgen::schedule
