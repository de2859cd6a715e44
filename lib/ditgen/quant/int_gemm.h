// The integer linear on the CPU: int8 activations x int8 weights -> exact int32 -> float with per-token x
// per-output-channel scales and zero-point corrections; and its float fake-quant reference.
//
// With x ~ s_x (x_q - z_x) (z_x per tensor) and w ~ s_w (w_q - z_w) (per output channel n):
//   y[m, n] = s_x[m] s_w[n] (acc[m, n] - z_w[n] sum_k x_q[m, k] - z_x sum_k w_q[n, k] + K z_x z_w[n]) + b[n]
// with acc = x_q . w_q^T in int32 (exact: |acc| <= K 128^2, far below 2^31 for any model width here).
// The int32 sum is then rounded to float32 once, so the result equals the reference to float rounding.
#pragma once

#include <ATen/ATen.h>

#include "ditgen/quant/quantizer.h"

namespace ditgen::quant {

// a [M, K] int8 times b [N, K] int8 transposed, exactly, in int32. On a CPU with VNNI this is at::_int_mm
// (oneDNN, exact); on one with AVX2 but no VNNI int8_gemm_avx2, since there at::_int_mm is a slow scalar loop;
// elsewhere at::_int_mm (on the CPU it takes every shape: the M > 16, K and N multiple-of-8 limits are CUDA's).
// On CUDA, cuBLAS through at::_int_mm, the operands zero-padded to its limits. Other devices, and operands on
// two devices, are refused (Usage).
at::Tensor int8_matmul(const at::Tensor& a, const at::Tensor& b);  // -> int32 [M, N]
// The same product by a plain int32 matmul: slow, obviously exact, the check on int8_matmul.
at::Tensor int8_matmul_reference(const at::Tensor& a, const at::Tensor& b);  // -> int32 [M, N]

// y = x w^T + bias from quantized activations [..., K] and a quantized weight [N, K]; bias [N] or undefined;
// y in out_dtype. On an H100 with bf16 output and symmetric activations this is one kernel, the Hopper int8
// GEMM with the dequantization and bias in its epilogue (gemm_sm90.h); elsewhere int8_matmul, the
// zero-point corrections in int32, and the scales and bias in float32 (on the CPU one loop,
// int8_linear_cpu.h), rounded to out_dtype at the end.
// gelu: GELU (tanh form) of y, in the kernel's epilogue where the Hopper kernel runs.
at::Tensor integer_linear(const QuantizedActivation& x, const QuantizedWeight& weight, const at::Tensor& bias,
                          at::ScalarType out_dtype = at::kFloat, bool gelu = false);
// The float reference of integer_linear: at::linear on the dequantized activations and weight.
at::Tensor integer_linear_reference(const QuantizedActivation& x, const QuantizedWeight& weight,
                                    const at::Tensor& bias);

// x float [..., K] quantized per token (symmetric int8), then integer_linear: the dynamic int8 linear, in x's
// dtype.
at::Tensor dynamic_int8_linear(const at::Tensor& x, const QuantizedWeight& weight, const at::Tensor& bias);
// Its reference in float: fake-quantized x through at::linear with the dequantized weight.
at::Tensor dynamic_int8_linear_reference(const at::Tensor& x, const QuantizedWeight& weight, const at::Tensor& bias);

}  // namespace ditgen::quant
