// Per-token quantization: one warp a row. The first pass finds the row's absolute maximum (16-byte vector
// loads, a shuffle reduction); the second reads the row again (from L1/L2) and writes its grid values, and for
// int8 the row's sum, which the integer GEMM's zero-point correction needs.
#include "ditgen/quant/token_quant_kernels.h"

#include "ditgen/cuda/element_type.cuh"
#include "ditgen/quant/token_quant.cuh"

namespace ditgen::quant {

namespace {

constexpr int kWarp = 32;
constexpr int kRowsPerBlock = 4;

template <typename Out, int P>
struct alignas(P * sizeof(Out)) OutPack {
  Out v[P];
};

template <typename T, TokenFormat kFormat>
__global__ void __launch_bounds__(kWarp * kRowsPerBlock) token_quant_kernel(TokenQuantArgs a) {
  using cuda::Pack;
  constexpr int P = Pack<T>::size;
  using Out = std::conditional_t<kFormat == TokenFormat::Int8, int8_t, __nv_fp8_storage_t>;
  const int lane = threadIdx.x % kWarp;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarp;
  if (row >= a.rows) return;
  const int64_t packs = a.dim / P;
  const Pack<T>* x = reinterpret_cast<const Pack<T>*>(static_cast<const T*>(a.x) + row * a.dim);

  float absmax = 0.f;
  for (int64_t p = lane; p < packs; p += kWarp) {
    const Pack<T> pack = x[p];
#pragma unroll
    for (int i = 0; i < P; ++i) absmax = fmaxf(absmax, fabsf(cuda::to_float(pack.v[i])));
  }
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset /= 2) absmax = fmaxf(absmax, __shfl_xor_sync(0xffffffffu, absmax, offset));
  const float scale = token_scale(absmax, kFormat == TokenFormat::Int8 ? kInt8TokenMax : kFp8TokenMax);

  OutPack<Out, P>* out = reinterpret_cast<OutPack<Out, P>*>(static_cast<Out*>(a.values) + row * a.dim);
  int sum = 0;
  for (int64_t p = lane; p < packs; p += kWarp) {
    const Pack<T> pack = x[p];
    OutPack<Out, P> q;
#pragma unroll
    for (int i = 0; i < P; ++i) {
      if constexpr (kFormat == TokenFormat::Int8) {
        q.v[i] = to_int8_grid(cuda::to_float(pack.v[i]), scale);
        sum += q.v[i];
      } else {
        q.v[i] = to_e4m3(cuda::to_float(pack.v[i]), scale);
      }
    }
    out[p] = q;
  }
  if (lane == 0) a.scales[row] = scale;
  if constexpr (kFormat == TokenFormat::Int8) {
#pragma unroll
    for (int offset = kWarp / 2; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
    if (lane == 0 && a.sums != nullptr) a.sums[row] = sum;
  }
}

}  // namespace

cudaError_t launch_token_quant(const TokenQuantArgs& a, cuda::ElementType type, TokenFormat format,
                               cudaStream_t stream) {
  if (a.rows == 0) return cudaSuccess;
  if (a.dim <= 0 || a.rows > static_cast<int64_t>(0x7fffffff) * kRowsPerBlock) return cudaErrorInvalidValue;
  const dim3 grid(static_cast<unsigned>((a.rows + kRowsPerBlock - 1) / kRowsPerBlock));
  const dim3 block(kWarp * kRowsPerBlock);
  return cuda::with_element_type(type, [&](auto zero) {
    using T = decltype(zero);
    if (a.dim % cuda::Pack<T>::size != 0) return cudaErrorInvalidValue;
    if (format == TokenFormat::Int8)
      token_quant_kernel<T, TokenFormat::Int8><<<grid, block, 0, stream>>>(a);
    else
      token_quant_kernel<T, TokenFormat::Fp8E4M3><<<grid, block, 0, stream>>>(a);
    return cudaGetLastError();
  });
}

}  // namespace ditgen::quant
