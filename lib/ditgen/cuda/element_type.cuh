// Device side of ElementType for the kernel sources: conversions to and from fp32, 16-byte vector packs, and
// the dispatch from an ElementType to the CUDA type a templated launcher takes.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include "ditgen/cuda/element_type.h"

namespace ditgen::cuda {

__device__ inline float to_float(float v) { return v; }
__device__ inline float to_float(__half v) { return __half2float(v); }
__device__ inline float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T> __device__ inline T from_float(float v);
template <> __device__ inline float from_float<float>(float v) { return v; }
template <> __device__ inline __half from_float<__half>(float v) { return __float2half_rn(v); }
template <> __device__ inline __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// 16 bytes of T, loaded and stored as one vector.
template <typename T>
struct alignas(16) Pack {
  static constexpr int size = 16 / sizeof(T);
  T v[size];
};

// launch(T{}) with T the CUDA type of `type`: float, __half or __nv_bfloat16.
template <typename Launch>
cudaError_t with_element_type(ElementType type, Launch&& launch) {
  switch (type) {
    case ElementType::Float32: return launch(float{});
    case ElementType::Float16: return launch(__half{});
    case ElementType::BFloat16: return launch(__nv_bfloat16{});
  }
  return cudaErrorInvalidValue;
}

}  // namespace ditgen::cuda
