// The CPU side of the integer linear around its GEMM (int_gemm.h): per-token quantization of the input and the
// dequantizing epilogue, each one pass over the rows. The LibTorch ops they replace on the CPU remain their
// references (quantize_per_token_reference; integer_linear_reference): each of those ops swept the [M, N]
// tensor once more and took a fresh one from the allocator, and together cost 2-3x the VNNI GEMM at the default
// model's shapes.
#pragma once

#include <ATen/ATen.h>

#include "ditgen/quant/quantizer.h"

namespace ditgen::quant {

// x float32 [..., K] on the CPU, per token to symmetric int8: the integers and scales of
// quantize_per_token_reference bit for bit, plus each row's sum of values. Error(Usage) for NaN or infinite
// values.
QuantizedActivation quantize_per_token_cpu(const at::Tensor& x);

// acc int32 [M, N] (x's values times the weight's, M = x's tokens) to float32 [M, N], in acc's own memory (acc
// is overwritten; the result is acc viewed as float32):
//   y[m, n] = float(acc[m, n] - z_w[n] sum_x[m] - z_x sum_w[n] + K z_x z_w[n]) * (s_x[m] s_w[n]) + b[n]
// (int_gemm.h's formula, the corrections in int32); bias [N] or undefined. CPU tensors only.
at::Tensor dequantize_product_cpu(const at::Tensor& acc, const QuantizedActivation& x, const QuantizedWeight& weight,
                                  const at::Tensor& bias);

}  // namespace ditgen::quant
