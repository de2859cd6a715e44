// Per-token quantization: one block a row. The first pass finds the row's absolute maximum (16-byte vector
// loads, a block reduction) and keeps the row in shared memory (up to 48 KB: a 4608-wide bf16 row is 9 KB); the
// second writes its grid values, and for int8 the row's sum, which the integer GEMM's zero-point correction
// needs. Each row is read from memory once.
#include "ditgen/quant/token_quant_kernels.h"

#include "ditgen/cuda/element_type.cuh"
#include "ditgen/quant/token_quant.cuh"

namespace ditgen::quant {

namespace {

constexpr int kThreads = 128;             // one block a row
constexpr int kWarps = kThreads / 32;
constexpr int64_t kCachedRowBytes = 48 * 1024;  // rows up to this size are read from memory once

template <typename Out, int P>
struct alignas(P * sizeof(Out)) OutPack {
  Out v[P];
};

// The block's reduction of one value a thread (op: max or sum), through shared memory.
template <typename V, typename Op>
__device__ V block_reduce(V v, V* scratch, Op op) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = v;
  __syncthreads();
  v = scratch[0];
#pragma unroll
  for (int w = 1; w < kWarps; ++w) v = op(v, scratch[w]);
  __syncthreads();
  return v;
}

// kCached: the row is kept in shared memory between the passes (one read of memory), else read twice.
template <typename T, TokenFormat kFormat, bool kCached>
__global__ void __launch_bounds__(kThreads) token_quant_kernel(TokenQuantArgs a) {
  using cuda::Pack;
  constexpr int P = Pack<T>::size;
  using Out = std::conditional_t<kFormat == TokenFormat::Int8, int8_t, __nv_fp8_storage_t>;
  extern __shared__ __align__(16) unsigned char cached_bytes[];  // one untyped buffer for every instantiation
  Pack<T>* cached = reinterpret_cast<Pack<T>*>(cached_bytes);
  __shared__ float max_scratch[kWarps];
  __shared__ int sum_scratch[kWarps];
  const int64_t row = blockIdx.x;
  const int64_t packs = a.dim / P;
  const Pack<T>* x = reinterpret_cast<const Pack<T>*>(static_cast<const T*>(a.x) + row * a.dim);

  float absmax = 0.f;
  for (int64_t p = threadIdx.x; p < packs; p += kThreads) {
    const Pack<T> pack = x[p];
    if constexpr (kCached) cached[p] = pack;
#pragma unroll
    for (int i = 0; i < P; ++i) absmax = fmaxf(absmax, fabsf(cuda::to_float(pack.v[i])));
  }
  absmax = block_reduce(absmax, max_scratch, [](float u, float v) { return fmaxf(u, v); });
  const float scale = token_scale(absmax, kFormat == TokenFormat::Int8 ? kInt8TokenMax : kFp8TokenMax);

  OutPack<Out, P>* out = reinterpret_cast<OutPack<Out, P>*>(static_cast<Out*>(a.values) + row * a.dim);
  int sum = 0;
  for (int64_t p = threadIdx.x; p < packs; p += kThreads) {
    const Pack<T> pack = kCached ? cached[p] : x[p];
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
  if (threadIdx.x == 0) a.scales[row] = scale;
  if constexpr (kFormat == TokenFormat::Int8) {
    sum = block_reduce(sum, sum_scratch, [](int u, int v) { return u + v; });
    if (threadIdx.x == 0 && a.sums != nullptr) a.sums[row] = sum;
  }
}

template <typename T, TokenFormat kFormat>
cudaError_t launch_typed(const TokenQuantArgs& a, cudaStream_t stream) {
  const size_t row_bytes = static_cast<size_t>(a.dim) * sizeof(T);
  const dim3 grid(static_cast<unsigned>(a.rows));
  if (row_bytes <= kCachedRowBytes)
    token_quant_kernel<T, kFormat, true><<<grid, kThreads, row_bytes, stream>>>(a);
  else
    token_quant_kernel<T, kFormat, false><<<grid, kThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_token_quant(const TokenQuantArgs& a, cuda::ElementType type, TokenFormat format,
                               cudaStream_t stream) {
  if (a.rows == 0) return cudaSuccess;
  if (a.dim <= 0 || a.rows > 0x7fffffff) return cudaErrorInvalidValue;
  return cuda::with_element_type(type, [&](auto zero) {
    using T = decltype(zero);
    if (a.dim % cuda::Pack<T>::size != 0) return cudaErrorInvalidValue;
    return format == TokenFormat::Int8 ? launch_typed<T, TokenFormat::Int8>(a, stream)
                                       : launch_typed<T, TokenFormat::Fp8E4M3>(a, stream);
  });
}

}  // namespace ditgen::quant
