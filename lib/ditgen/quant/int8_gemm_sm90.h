// The integer linear's GEMM on Hopper (int8_gemm_sm90.cu): int8 x int8 on the int8 tensor cores (wgmma, TMA,
// warp-specialized), with the whole dequantization in its epilogue, written once as bf16:
//
//   out[m, n] = token_scale[m] * channel_scale[n] * (acc[m, n] - token_sum[m] * channel_zero[n]) + bias[n]
//   acc = a . b^T exact in int32
//
// the dynamic int8 linear of int_gemm.h for per-token symmetric activations and per-output-channel weights
// (channel_zero = the weight's zero points; token_sum = the row sums of a). Torch-free so that only this file
// pays for CUTLASS's templates; quant/cuda_linear.cpp checks shapes and dtypes and holds the reference.
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime_api.h>

namespace ditgen::quant {

struct Int8GemmSm90Args {
  const int8_t* a = nullptr;              // [M, K] row-major activations
  const int8_t* b = nullptr;              // [N, K] row-major weight
  const float* token_scales = nullptr;    // [M]
  const int32_t* token_sums = nullptr;    // [M]; nullptr with channel_zeros == nullptr (symmetric weights)
  const int32_t* channel_zeros = nullptr; // [N] or nullptr
  const float* channel_scales = nullptr;  // [N]
  const float* bias = nullptr;            // [N] or nullptr
  void* out = nullptr;                    // [M, N] row-major bf16
  int64_t m = 0, n = 0, k = 0;
  bool gelu = false;                      // out = GELU(...) (tanh form): the MLP's first layer
};

// Whether this build holds the kernel (compiled for sm_90a). The caller also checks the device is sm_90.
bool int8_gemm_sm90_built();
// What the kernel takes: K a multiple of 16 (TMA's 16-byte rows of int8), N a multiple of 8 (of bf16), and
// sizes that fit int32.
bool int8_gemm_sm90_takes(int64_t m, int64_t n, int64_t k);
// Workspace bytes the launch needs for these sizes (0 for the tile schedule used here, but asked, not assumed).
size_t int8_gemm_sm90_workspace_size(const Int8GemmSm90Args& args);
// Queues the GEMM on `stream`; cudaErrorNotSupported when the build lacks it or CUTLASS refuses the sizes.
cudaError_t launch_int8_gemm_sm90(const Int8GemmSm90Args& args, void* workspace, cudaStream_t stream);

}  // namespace ditgen::quant
