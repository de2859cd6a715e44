// Devices and dtypes as users name them, device facts and timing that work the same on CPU and CUDA (CUDA
// parts need a CUDA build).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

namespace ditgen {

// Parses "auto", "cpu", "cuda", "cuda:N"; auto picks CUDA when available. Throws Error(Usage).
c10::Device parse_device(const std::string& text);
// Parses "fp32", "bf16", "fp16" (and "float32", "bfloat16", "float16"). Throws Error(Usage).
c10::ScalarType parse_dtype(const std::string& text);
// The dtype a run on `device` uses for `text`: "auto" is bf16 on CUDA and fp32 elsewhere (CPUs have no fast
// bf16 matmuls); any other name as parse_dtype.
c10::ScalarType resolve_dtype(const std::string& text, c10::Device device);
// fp32 means fp32: for a float32 model, cuDNN's convolutions (patch embeddings, the VAE) stop running in TF32.
void keep_fp32_exact(c10::ScalarType dtype);
// "fp32", "bf16", "fp16" (torch's name for others).
std::string dtype_label(c10::ScalarType dtype);

// Waits for all queued work on the device (no-op on CPU).
void synchronize(c10::Device device);
// The device's name ("NVIDIA H100 80GB HBM3", "cpu").
std::string device_name(c10::Device device);
// Returns the caching allocator's unused device memory to the driver (after running out of memory).
void release_cached_memory(c10::Device device);
// Peak memory the caching allocator handed out since the last reset, in GiB; nullopt off CUDA.
void reset_peak_memory(c10::Device device);
std::optional<double> peak_memory_gib(c10::Device device);
// Memory allocated on the device now (tensors alive), in GiB; nullopt off CUDA.
std::optional<double> allocated_memory_gib(c10::Device device);
// Bytes a run can still take: on CUDA the driver's free memory plus what the caching allocator holds unused,
// on the CPU the kernel's MemAvailable; 0 when unknown.
uint64_t available_memory_bytes(c10::Device device);

// Runs `first` on the current stream and `second` beside it on a side stream, joined before returning, so
// two small forwards that each leave most of a GPU idle overlap (capturable in a CUDA graph). One after the
// other off CUDA.
std::pair<at::Tensor, at::Tensor> run_side_by_side(c10::Device device, const std::function<at::Tensor()>& first,
                                                   const std::function<at::Tensor()>& second);

// Times a region of device work: CUDA events on the current stream, a steady clock (after the work) on CPU.
class DeviceTimer {
 public:
  explicit DeviceTimer(c10::Device device);
  ~DeviceTimer();
  void start();
  // Milliseconds since start(); waits for the device work queued in between.
  double stop_ms();

 private:
  struct Events;
  c10::Device device_;
  std::unique_ptr<Events> events_;
  std::chrono::steady_clock::time_point started_;
};

}  // namespace ditgen
