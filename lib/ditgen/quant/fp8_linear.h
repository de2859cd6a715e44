// The FP8 linear, the non-integer speed reference beside the integer one (docs/QUANT.md): weights in e4m3 with
// one scale per output channel (absmax / 448), activations in e4m3 with one scale per token, multiplied by
// cuBLASLt's FP8 GEMM (at::_scaled_mm with row-wise scales, fp32 accumulation) with the scales and bias in its
// epilogue, or on an H100 our Hopper GEMM (gemm_sm90.h), which also takes the MLP's GELU. FP8 layers are made
// from a float model when it is loaded (quantize_model_fp8), not stored.
#pragma once

#include <ATen/ATen.h>

namespace ditgen::quant {

struct Fp8Weight {
  at::Tensor values;  // float8_e4m3fn [out, in]
  at::Tensor scales;  // float32 [out], > 0
};

// Per output channel: scale = absmax / 448 (1 for an all-zero row), values = e4m3(w / scale), rounded to
// nearest. Error(Usage) for a weight that is not 2-D float; Error(Model) for NaN or infinite values.
Fp8Weight quantize_weight_fp8(const at::Tensor& weight);
at::Tensor dequantize(const Fp8Weight& weight);  // -> float32 [out, in]

// x [..., K] per token to e4m3 and back in float32, as the FP8 GEMM sees it.
at::Tensor fake_quantize_per_token_fp8(const at::Tensor& x);

// y = x w^T + bias in x's dtype, or GELU (tanh form) of it. With a bf16 x on CUDA the per-token kernel quantizes
// x, then on an H100 the Hopper GEMM (gemm_sm90.h: the scales, bias and GELU in its epilogue; K a multiple of
// 16, N of 8), on other sm_89+ GPUs cuBLASLt's through _scaled_mm (K, N multiples of 16; GELU apart);
// elsewhere fp8_linear_reference.
at::Tensor fp8_linear(const at::Tensor& x, const Fp8Weight& weight, const at::Tensor& bias, bool gelu = false);
// The float reference: fake-quantized x times the dequantized weight, in float32, rounded to x's dtype.
at::Tensor fp8_linear_reference(const at::Tensor& x, const Fp8Weight& weight, const at::Tensor& bias);

}  // namespace ditgen::quant
