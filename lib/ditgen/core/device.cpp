#include "ditgen/core/device.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <mutex>
#include <string>

#include <ATen/Context.h>

#include "ditgen/core/error.h"

#ifdef DITGEN_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace ditgen {

#ifdef DITGEN_HAVE_CUDA
struct DeviceTimer::Events {
  at::cuda::CUDAEvent begin{cudaEventDefault}, end{cudaEventDefault};
};
#else
struct DeviceTimer::Events {};
#endif

#ifdef DITGEN_HAVE_CUDA
namespace {
// "cuda" without an index means the first GPU.
c10::DeviceIndex cuda_index(c10::Device device) { return device.index() < 0 ? 0 : device.index(); }
}  // namespace
#endif

c10::Device parse_device(const std::string& text) {
  if (text == "auto") return at::hasCUDA() ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  if (text == "cpu") return c10::Device(c10::kCPU);
  if (text == "cuda" || text.rfind("cuda:", 0) == 0) {
    if (!at::hasCUDA()) throw Error(ErrorKind::Usage, "device '" + text + "' asked for, but no CUDA GPU is available");
    int index = 0;
    if (text.size() > 5) {
      const std::string digits = text.substr(5);
      if (digits.empty() || digits.size() > 3 || digits.find_first_not_of("0123456789") != std::string::npos)
        throw Error(ErrorKind::Usage, "invalid device '" + text + "' (use auto, cpu, cuda or cuda:N)");
      index = std::stoi(digits);
    }
    return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  throw Error(ErrorKind::Usage, "invalid device '" + text + "' (use auto, cpu, cuda or cuda:N)");
}

c10::ScalarType parse_dtype(const std::string& text) {
  if (text == "fp32" || text == "float32") return c10::kFloat;
  if (text == "bf16" || text == "bfloat16") return c10::kBFloat16;
  if (text == "fp16" || text == "float16") return c10::kHalf;
  throw Error(ErrorKind::Usage, "invalid dtype '" + text + "' (use fp32, bf16 or fp16)");
}

c10::ScalarType resolve_dtype(const std::string& text, c10::Device device) {
  if (text == "auto") return device.is_cuda() ? c10::kBFloat16 : c10::kFloat;
  return parse_dtype(text);
}

void keep_fp32_exact(c10::ScalarType dtype) {
  if (dtype == at::kFloat) at::globalContext().setAllowTF32CuDNN(false);
}

std::string dtype_label(c10::ScalarType dtype) {
  switch (dtype) {
    case c10::kFloat: return "fp32";
    case c10::kBFloat16: return "bf16";
    case c10::kHalf: return "fp16";
    default: return c10::toString(dtype);
  }
}

void synchronize(c10::Device device) {
#ifdef DITGEN_HAVE_CUDA
  if (device.is_cuda()) {
    c10::cuda::CUDAGuard guard(device);
    c10::cuda::getCurrentCUDAStream().synchronize();
  }
#else
  (void)device;
#endif
}

std::pair<at::Tensor, at::Tensor> run_side_by_side(c10::Device device, const std::function<at::Tensor()>& first,
                                                   const std::function<at::Tensor()>& second) {
#ifdef DITGEN_HAVE_CUDA
  if (device.is_cuda()) {
    const c10::DeviceIndex index = cuda_index(device);
    // One side stream per device for the process: a graph's warm-up and capture then share its library handles.
    static std::map<c10::DeviceIndex, c10::cuda::CUDAStream> side_streams;
    static std::mutex mutex;
    c10::cuda::CUDAStream main = c10::cuda::getCurrentCUDAStream(index);
    c10::cuda::CUDAStream side = [&] {
      std::lock_guard<std::mutex> lock(mutex);
      auto it = side_streams.find(index);
      if (it == side_streams.end()) it = side_streams.emplace(index, c10::cuda::getStreamFromPool(false, index)).first;
      return it->second;
    }();
    at::cuda::CUDAEvent forked, joined;
    forked.record(main);
    forked.block(side);
    at::Tensor second_out;
    {
      c10::cuda::CUDAStreamGuard guard(side);
      second_out = second();
    }
    at::Tensor first_out = first();
    joined.record(side);
    joined.block(main);
    second_out.record_stream(main);  // its memory is not reused on the side stream while main still reads it
    return {std::move(first_out), std::move(second_out)};
  }
#else
  (void)device;
#endif
  at::Tensor first_out = first();
  return {std::move(first_out), second()};
}

std::string device_name(c10::Device device) {
#ifdef DITGEN_HAVE_CUDA
  if (device.is_cuda()) return at::cuda::getDeviceProperties(cuda_index(device))->name;
#endif
  return device.str();
}

void release_cached_memory(c10::Device device) {
#ifdef DITGEN_HAVE_CUDA
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::emptyCache();
#else
  (void)device;
#endif
}

void reset_peak_memory(c10::Device device) {
#ifdef DITGEN_HAVE_CUDA
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(cuda_index(device));
#else
  (void)device;
#endif
}

namespace {

// The caching allocator's bytes allocated on `device`, at their peak or now, in GiB; nullopt off CUDA.
std::optional<double> allocated_gib(c10::Device device, bool peak) {
#ifdef DITGEN_HAVE_CUDA
  if (device.is_cuda()) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(cuda_index(device));
    const auto& bytes = stats.allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)];
    return static_cast<double>(peak ? bytes.peak : bytes.current) / (1024.0 * 1024.0 * 1024.0);
  }
#else
  (void)device;
  (void)peak;
#endif
  return std::nullopt;
}

}  // namespace

std::optional<double> peak_memory_gib(c10::Device device) { return allocated_gib(device, true); }

std::optional<double> allocated_memory_gib(c10::Device device) { return allocated_gib(device, false); }

uint64_t available_memory_bytes(c10::Device device) {
#ifdef DITGEN_HAVE_CUDA
  if (device.is_cuda()) {
    c10::cuda::CUDAGuard guard(device);
    size_t free = 0, total = 0;
    if (cudaMemGetInfo(&free, &total) != cudaSuccess) return 0;
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(cuda_index(device));
    const auto aggregate = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
    const int64_t cached = stats.reserved_bytes[aggregate].current - stats.allocated_bytes[aggregate].current;
    return free + static_cast<uint64_t>(std::max<int64_t>(cached, 0));
  }
#else
  (void)device;
#endif
  std::ifstream meminfo("/proc/meminfo");
  for (std::string key; meminfo >> key;) {
    uint64_t kib = 0;
    meminfo >> kib;
    if (key == "MemAvailable:") return kib * 1024;
    meminfo.ignore(64, '\n');
  }
  return 0;
}

DeviceTimer::DeviceTimer(c10::Device device) : device_(device), events_(std::make_unique<Events>()) {}
DeviceTimer::~DeviceTimer() = default;

void DeviceTimer::start() {
#ifdef DITGEN_HAVE_CUDA
  if (device_.is_cuda()) {
    events_->begin.record();
    return;
  }
#endif
  started_ = std::chrono::steady_clock::now();
}

double DeviceTimer::stop_ms() {
#ifdef DITGEN_HAVE_CUDA
  if (device_.is_cuda()) {
    events_->end.record();
    events_->end.synchronize();
    return events_->begin.elapsed_time(events_->end);
  }
#endif
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started_).count();
}

}  // namespace ditgen
