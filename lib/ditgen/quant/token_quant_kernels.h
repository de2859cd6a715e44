// Raw launchers of the per-token activation quantization kernels (token_quant_kernels.cu): each row of x is
// quantized symmetrically with its own scale, to int8 (the integer GEMM's input, scale absmax / 127, as
// quant::quantize_per_token) or to FP8 e4m3 (the FP8 GEMM's, scale absmax / 448). Torch-free; quant/cuda_linear.cpp
// checks the tensors and holds the LibTorch reference.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "ditgen/cuda/element_type.h"

namespace ditgen::quant {

enum class TokenFormat { Int8, Fp8E4M3 };

struct TokenQuantArgs {
  const void* x = nullptr;  // [rows, dim] fp32, fp16 or bf16, 16-byte aligned rows
  void* values = nullptr;   // [rows, dim] int8 or e4m3
  float* scales = nullptr;  // [rows]
  int32_t* sums = nullptr;  // [rows] sum of each row's int8 values, or nullptr (int8 only)
  int64_t rows = 0;
  int64_t dim = 0;
};

cudaError_t launch_token_quant(const TokenQuantArgs& args, cuda::ElementType type, TokenFormat format,
                               cudaStream_t stream);

}  // namespace ditgen::quant
