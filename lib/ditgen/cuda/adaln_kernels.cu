// Fused adaLN kernels: (optional gated residual) + LayerNorm + modulation in one pass over the tokens, or the
// gated residual alone.
// One warp owns one row: it loads the row with 16-byte vectors into registers, reduces mean and variance
// with shuffles (two passes over registers, fp32), and writes the outputs once: y in T, or y quantized per
// token to int8 or e4m3 for the linear that reads it. The LibTorch reference
// (adaln.cpp) computes the same in separate ops.
#include "ditgen/cuda/adaln_kernels.h"

#include "ditgen/cuda/element_type.cuh"
#include "ditgen/quant/token_quant.cuh"

namespace ditgen::cuda {

namespace {

constexpr int kWarp = 32;
constexpr int kRowsPerBlock = 4;

__device__ inline float warp_sum(float v) {
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

__device__ inline float warp_max(float v) {
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

template <typename Out, int P>
struct alignas(P * sizeof(Out)) OutPack {
  Out v[P];
};

// What the kernel writes as y: floats in T, or tokens quantized per token (AdaLnArgs::y_values).
enum class YOut { Float, Int8, Fp8 };

// kPacks: 16-byte packs per lane, enough for the row (D <= 32 * kPacks * pack size). Each phase issues all of
// its loads before it uses any, so a warp keeps the whole row in flight (memory-bound: what sets the speed).
// The row is held in T, the precision x_out and y are stored in, which halves the registers of 16-bit rows.
template <typename T, int kPacks, bool kResidual, YOut kOut>
__global__ void __launch_bounds__(kWarp * kRowsPerBlock) adaln_kernel(AdaLnArgs a) {
  using Vec = Pack<T>;
  constexpr int P = Vec::size;
  const int lane = threadIdx.x % kWarp;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarp;
  if (row >= a.rows) return;
  const int64_t sample = row / a.tokens_per_sample;
  const int packs = static_cast<int>(a.dim / P);
  const auto row_of = [&](const void* base, int64_t index, int64_t stride) {
    return reinterpret_cast<const Vec*>(static_cast<const T*>(base) + index * stride);
  };

  Vec h[kPacks], branch[kPacks];  // h: x, then x_out, then y
#pragma unroll
  for (int j = 0; j < kPacks; ++j) {
    const int pack = lane + j * kWarp;
    if (pack < packs) {
      h[j] = row_of(a.x, row, a.dim)[pack];
      if constexpr (kResidual) branch[j] = row_of(a.branch, row, a.dim)[pack];
    }
  }
  float sum = 0.f;
#pragma unroll
  for (int j = 0; j < kPacks; ++j) {
    const int pack = lane + j * kWarp;
    if (pack < packs) {
      if constexpr (kResidual) {
        const Vec gate = row_of(a.gate, sample, a.gate_stride)[pack];
#pragma unroll
        for (int i = 0; i < P; ++i)
          h[j].v[i] = from_float<T>(to_float(h[j].v[i]) + to_float(gate.v[i]) * to_float(branch[j].v[i]));
        reinterpret_cast<Vec*>(static_cast<T*>(a.x_out) + row * a.dim)[pack] = h[j];
      }
#pragma unroll
      for (int i = 0; i < P; ++i) sum += to_float(h[j].v[i]);
    }
  }
  if (kResidual && a.y == nullptr && a.y_values == nullptr) return;  // the gated residual alone

  Vec shift[kPacks], scale[kPacks];
#pragma unroll
  for (int j = 0; j < kPacks; ++j) {
    const int pack = lane + j * kWarp;
    if (pack < packs) {
      shift[j] = row_of(a.shift, sample, a.shift_stride)[pack];
      scale[j] = row_of(a.scale, sample, a.scale_stride)[pack];
    }
  }
  const float mean = warp_sum(sum) / static_cast<float>(a.dim);
  float sq = 0.f;
#pragma unroll
  for (int j = 0; j < kPacks; ++j) {
    if (lane + j * kWarp < packs) {
#pragma unroll
      for (int i = 0; i < P; ++i) sq += (to_float(h[j].v[i]) - mean) * (to_float(h[j].v[i]) - mean);
    }
  }
  const float rstd = rsqrtf(warp_sum(sq) / static_cast<float>(a.dim) + a.eps);

  float absmax = 0.f;
#pragma unroll
  for (int j = 0; j < kPacks; ++j) {
    const int pack = lane + j * kWarp;
    if (pack < packs) {
#pragma unroll
      for (int i = 0; i < P; ++i) {
        // y as stored in T: the quantized rows are those of y itself, so they equal quantizing y.
        h[j].v[i] = from_float<T>((to_float(h[j].v[i]) - mean) * rstd * (1.f + to_float(scale[j].v[i])) +
                                  to_float(shift[j].v[i]));
        absmax = fmaxf(absmax, fabsf(to_float(h[j].v[i])));
      }
      if constexpr (kOut == YOut::Float) reinterpret_cast<Vec*>(static_cast<T*>(a.y) + row * a.dim)[pack] = h[j];
    }
  }
  if constexpr (kOut != YOut::Float) {
    const float row_scale = quant::token_scale(warp_max(absmax), kOut == YOut::Int8 ? quant::kInt8TokenMax
                                                                                  : quant::kFp8TokenMax);
    using Out = std::conditional_t<kOut == YOut::Int8, int8_t, __nv_fp8_storage_t>;
    int sum_q = 0;
#pragma unroll
    for (int j = 0; j < kPacks; ++j) {
      const int pack = lane + j * kWarp;
      if (pack < packs) {
        OutPack<Out, P> q;
#pragma unroll
        for (int i = 0; i < P; ++i) {
          if constexpr (kOut == YOut::Int8) {
            q.v[i] = quant::to_int8_grid(to_float(h[j].v[i]), row_scale);
            sum_q += q.v[i];
          } else {
            q.v[i] = quant::to_e4m3(to_float(h[j].v[i]), row_scale);
          }
        }
        reinterpret_cast<OutPack<Out, P>*>(static_cast<Out*>(a.y_values) + row * a.dim)[pack] = q;
      }
    }
    // |sum| <= 127 * 2048: exact in fp32
    if constexpr (kOut == YOut::Int8) sum_q = static_cast<int>(warp_sum(static_cast<float>(sum_q)));
    if (lane == 0) {
      a.y_scales[row] = row_scale;
      if (kOut == YOut::Int8 && a.y_sums != nullptr) a.y_sums[row] = sum_q;
    }
  }
}

template <typename T, int kPacks, bool kResidual>
void launch_out(const AdaLnArgs& a, dim3 grid, dim3 block, cudaStream_t stream) {
  if (a.y_values == nullptr)
    adaln_kernel<T, kPacks, kResidual, YOut::Float><<<grid, block, 0, stream>>>(a);
  else if (a.y_format == quant::TokenFormat::Int8)
    adaln_kernel<T, kPacks, kResidual, YOut::Int8><<<grid, block, 0, stream>>>(a);
  else
    adaln_kernel<T, kPacks, kResidual, YOut::Fp8><<<grid, block, 0, stream>>>(a);
}

template <typename T, int kPacks>
cudaError_t launch_with(const AdaLnArgs& a, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>((a.rows + kRowsPerBlock - 1) / kRowsPerBlock));
  const dim3 block(kWarp * kRowsPerBlock);
  if (a.branch)
    launch_out<T, kPacks, true>(a, grid, block, stream);
  else
    launch_out<T, kPacks, false>(a, grid, block, stream);
  return cudaGetLastError();
}

// The fewest packs a lane that hold the row: registers unused by a row are registers the SM's other warps lack.
template <typename T>
cudaError_t launch_typed(const AdaLnArgs& a, cudaStream_t stream) {
  const int64_t packs_per_lane = (a.dim / Pack<T>::size + kWarp - 1) / kWarp;
  if (packs_per_lane <= 1) return launch_with<T, 1>(a, stream);
  if (packs_per_lane <= 2) return launch_with<T, 2>(a, stream);
  if (packs_per_lane <= 3) return launch_with<T, 3>(a, stream);
  if (packs_per_lane <= 4) return launch_with<T, 4>(a, stream);
  if (packs_per_lane <= 5) return launch_with<T, 5>(a, stream);  // DiT-XL's 1152 in 16-bit
  if (packs_per_lane <= 8) return launch_with<T, 8>(a, stream);  // 16-bit rows up to kAdaLnMaxDim
  if constexpr (Pack<T>::size == 4) return launch_with<T, 16>(a, stream);  // float32 up to kAdaLnMaxDim
  return cudaErrorInvalidValue;
}

}  // namespace

cudaError_t launch_adaln(const AdaLnArgs& a, ElementType type, cudaStream_t stream) {
  if (a.rows == 0) return cudaSuccess;
  if (a.dim <= 0 || a.dim > kAdaLnMaxDim || a.rows > static_cast<int64_t>(0x7fffffff) * kRowsPerBlock)
    return cudaErrorInvalidValue;
  return with_element_type(type, [&](auto zero) { return launch_typed<decltype(zero)>(a, stream); });
}

}  // namespace ditgen::cuda
