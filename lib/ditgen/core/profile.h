// Where time goes: one run under LibTorch's Kineto profiler, summed per CUDA kernel, or on the CPU per op.
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

// Runs fn once under the profiler and returns, longest first and at most `top` of them, the CUDA kernels (and
// copies) by total time on a CUDA device, or elsewhere LibTorch's CPU ops by self time (less the ops they call).
std::vector<KernelTime> profile_kernels(const std::function<void()>& fn, c10::Device device, size_t top);

}  // namespace ditgen
