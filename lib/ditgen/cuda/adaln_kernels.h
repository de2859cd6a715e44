// Raw launchers of the fused adaLN kernels (adaln_kernels.cu). Torch-free so nvcc stays fast; adaln.cpp
// checks shapes, dtypes and alignment before it calls them, and keeps the LibTorch reference.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "ditgen/cuda/element_type.h"

namespace ditgen::cuda {

// Rows of x are tokens; row r belongs to sample r / tokens_per_sample, whose [D] rows of gate, shift and
// scale (each with its own row stride, in elements) condition it.
struct AdaLnArgs {
  const void* x = nullptr;       // [rows, D] residual stream
  const void* branch = nullptr;  // [rows, D] block output to add, gated (nullptr: no residual step)
  const void* gate = nullptr;    // [B, D]
  const void* shift = nullptr;   // [B, D]
  const void* scale = nullptr;   // [B, D]
  void* x_out = nullptr;         // [rows, D] x + gate * branch (only with a branch)
  void* y = nullptr;             // [rows, D] LayerNorm(x_out or x) * (1 + scale) + shift (nullptr: only x_out)
  // Instead of y, y quantized per token to int8 (quant/token_quant.cuh, as quant::quantize_per_token): the
  // input of an integer linear, made without a round trip of y through memory.
  int8_t* y_values = nullptr;   // [rows, D] (with y == nullptr)
  float* y_scales = nullptr;    // [rows]
  int32_t* y_sums = nullptr;    // [rows] each row's sum of y_values, or nullptr
  int64_t rows = 0;
  int64_t tokens_per_sample = 1;
  int64_t dim = 0;
  int64_t gate_stride = 0, shift_stride = 0, scale_stride = 0;
  float eps = 1e-6f;
};

// Largest D the kernels keep in registers (each warp holds one row).
constexpr int64_t kAdaLnMaxDim = 2048;

// Launches the fused kernel on `stream`; returns the launch error (cudaSuccess when queued).
cudaError_t launch_adaln(const AdaLnArgs& args, ElementType type, cudaStream_t stream);

}  // namespace ditgen::cuda
