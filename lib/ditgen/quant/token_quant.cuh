// Device side of per-token quantization, shared by the standalone kernel (token_quant_kernels.cu) and the
// adaLN kernel that quantizes the rows it produces (cuda/adaln_kernels.cu): the row's scale from its absolute
// maximum, and one value's grid point, with the rounding of quant::quantize_per_token (round half to even of
// x / scale, in fp32).
#pragma once

#include <cuda_fp8.h>

#include <cstdint>

namespace ditgen::quant {

constexpr float kInt8TokenMax = 127.f;  // the symmetric int8 grid -127..127
constexpr float kFp8TokenMax = 448.f;   // e4m3's largest finite value

// absmax / grid max, or 1 for an all-zero row (as affine_params).
__device__ inline float token_scale(float absmax, float grid_max) { return absmax > 0.f ? absmax / grid_max : 1.f; }

__device__ inline int8_t to_int8_grid(float x, float scale) {
  return static_cast<int8_t>(fminf(fmaxf(rintf(x / scale), -kInt8TokenMax), kInt8TokenMax));
}

__device__ inline __nv_fp8_storage_t to_e4m3(float x, float scale) {
  return __nv_cvt_float_to_fp8(x / scale, __NV_SATFINITE, __NV_E4M3);
}

}  // namespace ditgen::quant
