// The quantized linears' GEMM on Hopper: int8 x int8 (the integer linear, int_gemm.h) or e4m3 x e4m3 (the FP8
// linear, fp8_linear.h) on the tensor cores (wgmma, TMA, warp-specialized ping-pong), with the whole
// dequantization in its epilogue, written once as bf16:
//
//   out[m, n] = token_scale[m] * channel_scale[n] * (acc[m, n] - token_sum[m] * channel_zero[n]) + bias[n]
//   acc = a . b^T, exact in int32 (int8) or accumulated in fp32 (FP8, no zero points)
//
// and for the MLP's first layer GELU (tanh form) of it. One CUTLASS 3.x template (gemm_sm90.cuh) instantiated
// in two translation units, int8_gemm_sm90.cu and fp8_gemm_sm90.cu, so that each compiles on its own core.
// Torch-free so that only those files pay for CUTLASS's templates; int_gemm.cpp and fp8_linear.cpp check
// shapes and dtypes and hold the references.
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(DITGEN_HAVE_CUDA) || defined(__CUDACC__)
#include <cuda_runtime_api.h>
#endif

namespace ditgen::quant {

enum class GemmOperands { Int8, Fp8E4M3 };

struct GemmSm90Args {
  GemmOperands operands = GemmOperands::Int8;
  const void* a = nullptr;                // [M, K] row-major activations (int8 or e4m3)
  const void* b = nullptr;                // [N, K] row-major weight, of the same type
  const float* token_scales = nullptr;    // [M]
  const int32_t* token_sums = nullptr;    // [M] (int8 only); nullptr with channel_zeros == nullptr
  const int32_t* channel_zeros = nullptr; // [N] or nullptr (int8 only: the weight's zero points)
  const float* channel_scales = nullptr;  // [N]
  const float* bias = nullptr;            // [N] or nullptr
  void* out = nullptr;                    // [M, N] row-major bf16
  int64_t m = 0, n = 0, k = 0;
  bool gelu = false;                      // out = GELU(...) (tanh form): the MLP's first layer
};

// The arguments are plain data, visible to CPU-only builds too (gemm_sm90_launch.h); the functions below
// exist in CUDA builds.
#if defined(DITGEN_HAVE_CUDA) || defined(__CUDACC__)

// Whether this build holds the kernels (compiled for sm_90a with CUTLASS). The caller also checks the device
// is sm_90.
bool gemm_sm90_built();
// What the kernels take: K a multiple of 16 (TMA's 16-byte rows of 8-bit values), N a multiple of 8 (of bf16),
// and sizes that fit int32.
bool gemm_sm90_takes(int64_t m, int64_t n, int64_t k);
// Workspace bytes the launch needs for these sizes (0 for the tile schedule used here, but asked, not assumed).
size_t gemm_sm90_workspace_size(const GemmSm90Args& args);
// Queues the GEMM on `stream`; cudaErrorInvalidValue for sizes it does not take, cudaErrorNotSupported when
// the build lacks it or CUTLASS refuses the arguments.
cudaError_t launch_gemm_sm90(const GemmSm90Args& args, void* workspace, cudaStream_t stream);

namespace detail {
// Each operand type's instantiations (int8_gemm_sm90.cu, fp8_gemm_sm90.cu); launch_gemm_sm90 dispatches.
size_t int8_gemm_sm90_workspace_size(const GemmSm90Args& args);
cudaError_t launch_int8_gemm_sm90(const GemmSm90Args& args, void* workspace, cudaStream_t stream);
size_t fp8_gemm_sm90_workspace_size(const GemmSm90Args& args);
cudaError_t launch_fp8_gemm_sm90(const GemmSm90Args& args, void* workspace, cudaStream_t stream);
}  // namespace detail

#endif

}  // namespace ditgen::quant
