// Fused adaLN kernels: (optional gated residual) + LayerNorm + modulation in one pass over the tokens, or the
// gated residual alone.
// One warp owns one row: it loads the row with 16-byte vectors into registers, reduces mean and variance
// with shuffles (two passes over registers, fp32), and writes the outputs once. The LibTorch reference
// (adaln.cpp) computes the same in separate ops.
#include "ditgen/cuda/adaln_kernels.h"

#include "ditgen/cuda/element_type.cuh"
#include "ditgen/quant/token_quant.cuh"

namespace ditgen::cuda {

namespace {

constexpr int kWarp = 32;
constexpr int kRowsPerBlock = 4;

template <typename T>
__device__ inline void load_floats(const T* p, float* out) {
  Pack<T> pack = *reinterpret_cast<const Pack<T>*>(p);
#pragma unroll
  for (int i = 0; i < Pack<T>::size; ++i) out[i] = to_float(pack.v[i]);
}

template <typename T>
__device__ inline void store_floats(T* p, const float* in) {
  Pack<T> pack;
#pragma unroll
  for (int i = 0; i < Pack<T>::size; ++i) pack.v[i] = from_float<T>(in[i]);
  *reinterpret_cast<Pack<T>*>(p) = pack;
}

__device__ inline float warp_sum(float v) {
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// kPacks: 16-byte packs per lane, enough for the row (D <= 32 * kPacks * pack size).
template <typename T, int kPacks, bool kResidual, bool kQuantize>
__global__ void __launch_bounds__(kWarp * kRowsPerBlock) adaln_kernel(AdaLnArgs a) {
  constexpr int P = Pack<T>::size;
  const int lane = threadIdx.x % kWarp;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarp;
  if (row >= a.rows) return;
  const int64_t sample = row / a.tokens_per_sample;
  const int packs = static_cast<int>(a.dim / P);
  const T* x = static_cast<const T*>(a.x) + row * a.dim;

  float v[kPacks][P];
  float sum = 0.f;
#pragma unroll
  for (int j = 0; j < kPacks; ++j) {
    const int pack = lane + j * kWarp;
    if (pack >= packs) break;
    const int col = pack * P;
    load_floats(x + col, v[j]);
    if constexpr (kResidual) {
      float h[P], g[P];
      load_floats(static_cast<const T*>(a.branch) + row * a.dim + col, h);
      load_floats(static_cast<const T*>(a.gate) + sample * a.gate_stride + col, g);
#pragma unroll
      for (int i = 0; i < P; ++i) v[j][i] = to_float(from_float<T>(v[j][i] + g[i] * h[i]));  // stored precision
      store_floats(static_cast<T*>(a.x_out) + row * a.dim + col, v[j]);
    }
#pragma unroll
    for (int i = 0; i < P; ++i) sum += v[j][i];
  }
  if (kResidual && a.y == nullptr && a.y_values == nullptr) return;  // the gated residual alone
  const float mean = warp_sum(sum) / static_cast<float>(a.dim);
  float sq = 0.f;
#pragma unroll
  for (int j = 0; j < kPacks; ++j) {
    if (lane + j * kWarp >= packs) break;
#pragma unroll
    for (int i = 0; i < P; ++i) sq += (v[j][i] - mean) * (v[j][i] - mean);
  }
  const float rstd = rsqrtf(warp_sum(sq) / static_cast<float>(a.dim) + a.eps);

  const T* shift = static_cast<const T*>(a.shift) + sample * a.shift_stride;
  const T* scale = static_cast<const T*>(a.scale) + sample * a.scale_stride;
  float absmax = 0.f;
#pragma unroll
  for (int j = 0; j < kPacks; ++j) {
    const int pack = lane + j * kWarp;
    if (pack >= packs) break;
    const int col = pack * P;
    float sh[P], sc[P];
    load_floats(shift + col, sh);
    load_floats(scale + col, sc);
#pragma unroll
    for (int i = 0; i < P; ++i) {
      v[j][i] = (v[j][i] - mean) * rstd * (1.f + sc[i]) + sh[i];
      // The quantized rows are those of y as stored in T, so that they equal quantizing y itself.
      if constexpr (kQuantize) absmax = fmaxf(absmax, fabsf(to_float(from_float<T>(v[j][i]))));
    }
    if constexpr (!kQuantize) store_floats(static_cast<T*>(a.y) + row * a.dim + col, v[j]);
  }
  if constexpr (kQuantize) {
#pragma unroll
    for (int offset = kWarp / 2; offset > 0; offset /= 2) absmax = fmaxf(absmax, __shfl_xor_sync(0xffffffffu, absmax, offset));
    const float row_scale = quant::token_scale(absmax, quant::kInt8TokenMax);
    int sum = 0;
#pragma unroll
    for (int j = 0; j < kPacks; ++j) {
      const int pack = lane + j * kWarp;
      if (pack >= packs) break;
      struct alignas(P) Bytes { int8_t v[P]; } q;
#pragma unroll
      for (int i = 0; i < P; ++i) {
        q.v[i] = quant::to_int8_grid(to_float(from_float<T>(v[j][i])), row_scale);
        sum += q.v[i];
      }
      *reinterpret_cast<Bytes*>(a.y_values + row * a.dim + pack * P) = q;
    }
    sum = static_cast<int>(warp_sum(static_cast<float>(sum)));  // |sum| <= 127 * 2048: exact in fp32
    if (lane == 0) {
      a.y_scales[row] = row_scale;
      if (a.y_sums != nullptr) a.y_sums[row] = sum;
    }
  }
}

template <typename T, int kPacks>
cudaError_t launch_with(const AdaLnArgs& a, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>((a.rows + kRowsPerBlock - 1) / kRowsPerBlock));
  const dim3 block(kWarp * kRowsPerBlock);
  const bool quantize = a.y_values != nullptr;
  if (a.branch && quantize)
    adaln_kernel<T, kPacks, true, true><<<grid, block, 0, stream>>>(a);
  else if (a.branch)
    adaln_kernel<T, kPacks, true, false><<<grid, block, 0, stream>>>(a);
  else if (quantize)
    adaln_kernel<T, kPacks, false, true><<<grid, block, 0, stream>>>(a);
  else
    adaln_kernel<T, kPacks, false, false><<<grid, block, 0, stream>>>(a);
  return cudaGetLastError();
}

template <typename T>
cudaError_t launch_typed(const AdaLnArgs& a, cudaStream_t stream) {
  const int64_t packs_per_lane = (a.dim / Pack<T>::size + kWarp - 1) / kWarp;
  if (packs_per_lane <= 1) return launch_with<T, 1>(a, stream);
  if (packs_per_lane <= 2) return launch_with<T, 2>(a, stream);
  if (packs_per_lane <= 4) return launch_with<T, 4>(a, stream);
  if (packs_per_lane <= 8) return launch_with<T, 8>(a, stream);
  return launch_with<T, 16>(a, stream);  // float32 up to kAdaLnMaxDim
}

}  // namespace

cudaError_t launch_adaln(const AdaLnArgs& a, ElementType type, cudaStream_t stream) {
  if (a.rows == 0) return cudaSuccess;
  if (a.dim <= 0 || a.dim > kAdaLnMaxDim || a.rows > static_cast<int64_t>(0x7fffffff) * kRowsPerBlock)
    return cudaErrorInvalidValue;
  return with_element_type(type, [&](auto zero) { return launch_typed<decltype(zero)>(a, stream); });
}

}  // namespace ditgen::cuda
