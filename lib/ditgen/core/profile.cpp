#include "ditgen/core/profile.h"

#include <algorithm>
#include <map>

#include <torch/csrc/autograd/profiler_kineto.h>

#include "ditgen/core/device.h"

namespace ditgen {

namespace {

struct CpuOp {
  std::string name;
  uint64_t thread, start, end;
};

// Each CPU op's self time: its duration less that of the ops nested in it on the same thread (LibTorch's ops
// call one another: aten::linear holds aten::addmm), so that the times add up to the run's.
void add_self_times(std::vector<CpuOp> ops, std::map<std::string, KernelTime>& by_name) {
  std::sort(ops.begin(), ops.end(), [](const CpuOp& a, const CpuOp& b) {
    return a.thread != b.thread ? a.thread < b.thread : a.start != b.start ? a.start < b.start : a.end > b.end;
  });
  std::vector<size_t> open;                 // the ops enclosing the current one, innermost last
  std::vector<double> child_ns(ops.size());  // time of each op's direct children
  for (size_t i = 0; i < ops.size(); ++i) {
    while (!open.empty() && (ops[open.back()].thread != ops[i].thread || ops[open.back()].end <= ops[i].start))
      open.pop_back();
    if (!open.empty()) child_ns[open.back()] += static_cast<double>(ops[i].end - ops[i].start);
    open.push_back(i);
  }
  for (size_t i = 0; i < ops.size(); ++i) {
    KernelTime& k = by_name[ops[i].name];
    k.name = ops[i].name;
    k.ms += std::max(0.0, static_cast<double>(ops[i].end - ops[i].start) - child_ns[i]) / 1e6;
    ++k.calls;
  }
}

}  // namespace

std::vector<KernelTime> profile_kernels(const std::function<void()>& fn, c10::Device device, size_t top) {
  namespace profiler = torch::autograd::profiler;
  using torch::profiler::impl::ActivityType;
  const torch::profiler::impl::ProfilerConfig config(torch::profiler::impl::ProfilerState::KINETO);
  const std::set<ActivityType> activities =
      device.is_cuda() ? std::set<ActivityType>{ActivityType::CPU, ActivityType::CUDA} : std::set<ActivityType>{ActivityType::CPU};
  profiler::prepareProfiler(config, activities);
  profiler::enableProfiler(config, activities);
  fn();
  synchronize(device);
  const std::unique_ptr<profiler::ProfilerResult> result = profiler::disableProfiler();
  std::map<std::string, KernelTime> by_name;
  std::vector<CpuOp> cpu_ops;
  for (const auto& e : result->events()) {
    if (device.is_cuda() && e.deviceType() == c10::DeviceType::CUDA) {
      KernelTime& k = by_name[e.name()];
      k.name = e.name();
      k.ms += static_cast<double>(e.durationNs()) / 1e6;
      ++k.calls;
    } else if (!device.is_cuda() && e.deviceType() == c10::DeviceType::CPU) {
      cpu_ops.push_back({e.name(), e.startThreadId(), e.startNs(), e.endNs()});
    }
  }
  add_self_times(std::move(cpu_ops), by_name);
  std::vector<KernelTime> kernels;
  for (auto& [name, k] : by_name) kernels.push_back(k);
  std::sort(kernels.begin(), kernels.end(), [](const KernelTime& a, const KernelTime& b) { return a.ms > b.ms; });
  if (kernels.size() > top) kernels.resize(top);
  return kernels;
}

}  // namespace ditgen
