// Device facts and timing that work the same on CPU and CUDA (CUDA parts need a CUDA build).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

namespace ditgen {

// Waits for all queued work on the device (no-op on CPU).
void synchronize(c10::Device device);
// The device's name ("NVIDIA H100 80GB HBM3", "cpu").
std::string device_name(c10::Device device);
// Returns the caching allocator's unused device memory to the driver (after running out of memory).
void release_cached_memory(c10::Device device);
// Peak memory the caching allocator handed out since the last reset, in GiB; nullopt off CUDA.
void reset_peak_memory(c10::Device device);
std::optional<double> peak_memory_gib(c10::Device device);

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
