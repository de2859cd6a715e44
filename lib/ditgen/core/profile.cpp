#include "ditgen/core/profile.h"

#include <algorithm>
#include <map>

#include <torch/csrc/autograd/profiler_kineto.h>

#include "ditgen/core/device.h"

namespace ditgen {

std::vector<KernelTime> profile_kernels(const std::function<void()>& fn, c10::Device device, size_t top) {
  if (!device.is_cuda()) return {};
  namespace profiler = torch::autograd::profiler;
  using torch::profiler::impl::ActivityType;
  const torch::profiler::impl::ProfilerConfig config(torch::profiler::impl::ProfilerState::KINETO);
  const std::set<ActivityType> activities{ActivityType::CPU, ActivityType::CUDA};
  profiler::prepareProfiler(config, activities);
  profiler::enableProfiler(config, activities);
  fn();
  synchronize(device);
  const std::unique_ptr<profiler::ProfilerResult> result = profiler::disableProfiler();
  std::map<std::string, KernelTime> by_name;
  for (const auto& e : result->events()) {
    if (e.deviceType() != c10::DeviceType::CUDA) continue;
    KernelTime& k = by_name[e.name()];
    k.name = e.name();
    k.ms += static_cast<double>(e.durationNs()) / 1e6;
    ++k.calls;
  }
  std::vector<KernelTime> kernels;
  for (auto& [name, k] : by_name) kernels.push_back(k);
  std::sort(kernels.begin(), kernels.end(), [](const KernelTime& a, const KernelTime& b) { return a.ms > b.ms; });
  if (kernels.size() > top) kernels.resize(top);
  return kernels;
}

}  // namespace ditgen
