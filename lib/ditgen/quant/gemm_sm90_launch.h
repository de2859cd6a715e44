// The LibTorch side of the Hopper GEMM (gemm_sm90.h), shared by the integer linear (int_gemm.cpp) and the FP8
// linear (fp8_linear.cpp): whether it runs for a device and sizes, and the GEMM on tensors.
#pragma once

#include <ATen/ATen.h>

namespace ditgen::quant {

// An sm_90 CUDA device, a build that holds the kernels, and sizes they take. False off CUDA builds.
bool gemm_sm90_runs(const at::Device& device, int64_t m, int64_t n, int64_t k);

// bf16 out [M, N] = token_scales[m] * channel_scales[n] * (a . b^T - token_sums[m] * channel_zeros[n]) + bias[n],
// or GELU of it, on the current stream of a's device: a [M, K] and b [N, K] both int8 or both e4m3, the scales
// float32, bias [N] (any float dtype) or undefined, and for int8 with asymmetric weights token_sums [M] and
// channel_zeros [N] int32 (both undefined otherwise). The caller checked gemm_sm90_runs; a failure throws.
at::Tensor gemm_sm90(const at::Tensor& a, const at::Tensor& b, const at::Tensor& token_scales,
                     const at::Tensor& channel_scales, const at::Tensor& bias, bool gelu,
                     const at::Tensor& token_sums = {}, const at::Tensor& channel_zeros = {});

}  // namespace ditgen::quant
