#include "ditgen/schedule/density_schedule.h"

#include <algorithm>
#include <cmath>

namespace ditgen::schedule {

int Density::grid(int k, int steps) const {
  const int k0 = static_cast<int>(std::floor(hold * steps + 0.5));
  if (k < k0) return min_grid;
  if (steps - 1 - k0 <= 0) return max_grid;
  return static_cast<int>(
      std::floor(min_grid + static_cast<double>((max_grid - min_grid) * (k - k0)) / (steps - 1 - k0) + 0.5));
}

int Density::grid_at_noise(double level, int steps) const {
  const int k = static_cast<int>(std::floor((1.0 - std::clamp(level, 0.0, 1.0)) * (steps - 1) + 0.5));
  return grid(k, steps);
}

std::pair<double, double> Density::noise_range(int grid_size, int steps) const {
  int first = steps, last = -1;  // the steps k at that grid: one run, as grid(k) is monotonic in k
  for (int k = 0; k < steps; ++k)
    if (grid(k, steps) == grid_size) first = std::min(first, k), last = std::max(last, k);
  if (last < 0) return {1.0, 0.0};
  if (steps <= 1) return {0.0, 1.0};
  // grid_at_noise rounds (1 - level)(steps - 1) to k: step k takes the levels within half a step of its own.
  const double step = 1.0 / (steps - 1);
  return {std::max(0.0, 1.0 - (last + 0.5) * step), std::min(1.0, 1.0 - (first - 0.5) * step)};
}

}  // namespace ditgen::schedule
