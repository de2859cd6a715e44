// Where device time goes: one run under LibTorch's Kineto profiler, summed per CUDA kernel.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <c10/core/Device.h>

namespace ditgen {

struct KernelTime {
  std::string name;
  double ms = 0;       // total over the run
  int64_t calls = 0;
};

// Runs fn once under the profiler and returns the CUDA kernels (and copies) by total time, longest first,
// at most `top` of them. Empty off CUDA.
std::vector<KernelTime> profile_kernels(const std::function<void()>& fn, c10::Device device, size_t top);

}  // namespace ditgen
