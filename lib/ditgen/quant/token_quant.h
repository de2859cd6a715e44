// Per-token activation quantization on CUDA (token_quant_kernels.cu): int8 for the integer linear
// (quant::quantize_per_token runs it on CUDA tensors) and FP8 e4m3 for the FP8 linear (quant/fp8_linear.h).
// Their LibTorch references are quantize_per_token's CPU ops and fp8_linear.h's quantize_tokens_fp8_reference.
#pragma once

#include <ATen/ATen.h>

#include "ditgen/quant/quantizer.h"

namespace ditgen::quant {

// Whether the kernel takes x [..., K]: CUDA, fp32/fp16/bf16, K a multiple of 16 bytes' worth of elements, no
// gradient being recorded. (A strided or unaligned x is copied into contiguous rows first.)
bool token_quant_runs_kernel(const at::Tensor& x);

// The kernel's int8 quantization (values, scales and sums); Error(Usage) where it does not run.
QuantizedActivation quantize_per_token_kernel(const at::Tensor& x);

// x [..., K] per token to e4m3: values [..., K] e4m3, scales float32 [...] (absmax / 448).
struct Fp8Tokens {
  at::Tensor values;
  at::Tensor scales;
};
Fp8Tokens quantize_per_token_fp8_kernel(const at::Tensor& x);

}  // namespace ditgen::quant
