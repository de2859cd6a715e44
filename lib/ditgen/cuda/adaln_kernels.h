// Raw launchers of the fused adaLN kernels (adaln_kernels.cu). Torch-free so nvcc stays fast; adaln.cpp
// checks shapes, dtypes and alignment before it calls them, and keeps the LibTorch reference.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "ditgen/cuda/element_type.h"
#include "ditgen/quant/token_quant_kernels.h"

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
  // Instead of y, y quantized per token (quant/token_quant.cuh): to int8 as quant::quantize_per_token, the
  // input of an integer linear, or to e4m3 as the FP8 linear's token kernel; made without a round trip of y
  // through memory.
  void* y_values = nullptr;     // [rows, D] int8 or e4m3 (with y == nullptr)
  quant::TokenFormat y_format = quant::TokenFormat::Int8;
  float* y_scales = nullptr;    // [rows]
  int32_t* y_sums = nullptr;    // [rows] each row's sum of int8 y_values, or nullptr
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
