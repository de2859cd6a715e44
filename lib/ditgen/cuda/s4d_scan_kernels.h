// Raw launcher of the fused bidirectional S4D scan (s4d_scan_kernels.cu). Torch-free so nvcc stays fast;
// nn/s4d.cpp checks shapes and dtypes, allocates the workspace and keeps the references (the FFT path and the
// recurrence, S4DImpl::forward_scan).
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "ditgen/cuda/element_type.h"

namespace ditgen::cuda {

// Both directions of a bank of diagonal SSMs by their recurrence, in fp32: direction 0 runs x_l = a x_{l-1}
// + b u_l over l = 0..L-1, direction 1 the same over l = L-1..0, each with its own a, b, D, and
// y_l = 2 Re sum_n x_{l,n} + D u_l. The sequence is cut into chunks of `chunk` positions: pass 1 finds each
// chunk's final state from zero, pass 2 carries the states across chunks (x enters chunk k+1 as
// a^chunk x_k + s_k), pass 3 reruns every chunk from its incoming state and writes y.
struct S4dScanArgs {
  const void* u = nullptr;        // [B, L, C]
  void* y = nullptr;              // [B, L, 2C]: direction 0's C channels, then direction 1's
  const float* a = nullptr;       // [2, H, M, 2]: Abar per direction, kernel row and mode (re, im)
  const float* b = nullptr;       // [2, H, M, 2]: C Bbar
  const float* a_chunk = nullptr; // [2, H, M, 2]: Abar^chunk
  const float* skip = nullptr;    // [2, C]: D
  float* states = nullptr;        // [B, 2, chunks, C, M, 2] workspace
  int64_t batch = 0, length = 0, channels = 0;
  int64_t heads = 0;              // H: 1 (one kernel for all channels) or C
  int64_t modes = 0;              // M = N / 2
  int64_t chunk = 0;              // positions a chunk
};

// Modes one thread carries; a channel's modes are spread over a power-of-two group of lanes of one warp.
constexpr int64_t kS4dModesPerThread = 8;
constexpr int64_t kS4dMaxModes = 32 * kS4dModesPerThread;

// Positions a chunk for these sizes: as short as keeps about 2M lanes busy (shorter chunks mean more parallel
// lanes but a larger state workspace, [B, 2, chunks, C, M, 2] floats).
int64_t s4d_scan_chunk(int64_t batch, int64_t length, int64_t channels, int64_t modes);

// Launches the three passes on `stream`; returns the first launch error (cudaSuccess when queued).
cudaError_t launch_s4d_scan(const S4dScanArgs& args, ElementType type, cudaStream_t stream);

}  // namespace ditgen::cuda
