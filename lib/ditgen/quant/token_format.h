// The formats a token (one activation row) is quantized to for a linear's GEMM; shared by the kernels
// (torch-free) and the layers that choose them.
#pragma once

namespace ditgen::quant {

enum class TokenFormat {
  Int8,     // symmetric int8, scale absmax / 127: the integer linear's (quant::quantize_per_token)
  Fp8E4M3,  // e4m3, scale absmax / 448: the FP8 linear's (quant::quantize_per_token_fp8)
};

}  // namespace ditgen::quant
