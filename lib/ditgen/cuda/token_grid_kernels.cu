// Token-grid resampling for SparseDiT's sparse-dense modules, memory-bound and one pass each. Torch's own
// kernels for these on channels-last tokens (adaptive_avg_pool2d, upsample_nearest2d) ran at 0.2-0.3 TB/s on
// the H100, and the upsampled tokens were written only to be added to the dense ones.
// - pooling: one CTA per pooled token, a thread per 16-byte pack of the token (up to 256); each sums its
//   packs over the bin's rows in fp32.
// - upsampling: one thread per 16-byte pack of the dense tokens; it adds the pack of its nearest source token.
#include "ditgen/cuda/token_grid_kernels.h"

#include <algorithm>

#include "ditgen/cuda/element_type.cuh"

namespace ditgen::cuda {

namespace {

constexpr int kThreads = 128;     // upsampling
constexpr int kMaxThreads = 256;  // pooling: a thread per pack of a token, up to this many

template <typename T>
__global__ void __launch_bounds__(kMaxThreads) pool_tokens_kernel(TokenGridArgs a) {
  constexpr int P = Pack<T>::size;
  const int sw = a.sparse_w, sh = a.sparse_h;
  const int64_t out_token = blockIdx.x;  // b * sh * sw + i * sw + j
  const int64_t b = out_token / (sh * sw);
  const int i = static_cast<int>(out_token / sw % sh), j = static_cast<int>(out_token % sw);
  // torch's adaptive pooling bins (start_index / end_index in ATen).
  const int r0 = i * a.grid_h / sh, r1 = ((i + 1) * a.grid_h + sh - 1) / sh;
  const int c0 = j * a.grid_w / sw, c1 = ((j + 1) * a.grid_w + sw - 1) / sw;
  const float count = static_cast<float>((r1 - r0) * (c1 - c0));
  const T* dense = static_cast<const T*>(a.dense) + b * a.grid_h * a.grid_w * a.dim;
  T* out = static_cast<T*>(a.sparse_out) + out_token * a.dim;
  for (int64_t col = static_cast<int64_t>(threadIdx.x) * P; col < a.dim; col += static_cast<int64_t>(blockDim.x) * P) {
    float sum[P] = {};
    for (int r = r0; r < r1; ++r)
      for (int c = c0; c < c1; ++c) {
        const Pack<T> in = *reinterpret_cast<const Pack<T>*>(dense + (static_cast<int64_t>(r) * a.grid_w + c) * a.dim + col);
#pragma unroll
        for (int k = 0; k < P; ++k) sum[k] += to_float(in.v[k]);
      }
    Pack<T> o;
#pragma unroll
    for (int k = 0; k < P; ++k) o.v[k] = from_float<T>(sum[k] / count);
    *reinterpret_cast<Pack<T>*>(out + col) = o;
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads) add_upsampled_tokens_kernel(TokenGridArgs a, float row_scale,
                                                                         float col_scale) {
  constexpr int P = Pack<T>::size;
  const int64_t packs = a.dim / P;
  const int64_t index = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (index >= a.batch * a.grid_h * a.grid_w * packs) return;
  const int64_t token = index / packs, col = index % packs * P;
  const int64_t b = token / (a.grid_h * a.grid_w);
  const int r = static_cast<int>(token / a.grid_w % a.grid_h), c = static_cast<int>(token % a.grid_w);
  // ATen's nearest_neighbor_compute_source_index, in the same float arithmetic.
  const int sr = min(static_cast<int>(floorf(r * row_scale)), a.sparse_h - 1);
  const int sc = min(static_cast<int>(floorf(c * col_scale)), a.sparse_w - 1);
  T* dense = static_cast<T*>(a.dense_inout) + token * a.dim + col;
  const T* sparse = static_cast<const T*>(a.sparse) + ((b * a.sparse_h + sr) * a.sparse_w + sc) * a.dim + col;
  Pack<T> d = *reinterpret_cast<const Pack<T>*>(dense);
  const Pack<T> s = *reinterpret_cast<const Pack<T>*>(sparse);
#pragma unroll
  for (int k = 0; k < P; ++k) d.v[k] = from_float<T>(to_float(d.v[k]) + to_float(s.v[k]));
  *reinterpret_cast<Pack<T>*>(dense) = d;
}

bool valid(const TokenGridArgs& a, int pack) {
  return a.batch > 0 && a.dim > 0 && a.dim % pack == 0 && a.grid_h > 0 && a.grid_w > 0 && a.sparse_h > 0 &&
         a.sparse_w > 0 && a.sparse_h <= a.grid_h && a.sparse_w <= a.grid_w;
}

}  // namespace

cudaError_t launch_pool_tokens(const TokenGridArgs& a, ElementType type, cudaStream_t stream) {
  return with_element_type(type, [&](auto zero) {
    using T = decltype(zero);
    if (!valid(a, Pack<T>::size) || a.batch * a.sparse_h * a.sparse_w > 0x7fffffff) return cudaErrorInvalidValue;
    const int64_t warps = (a.dim / Pack<T>::size + 31) / 32;
    const unsigned threads = static_cast<unsigned>(std::min<int64_t>(warps * 32, kMaxThreads));
    pool_tokens_kernel<T><<<static_cast<unsigned>(a.batch * a.sparse_h * a.sparse_w), threads, 0, stream>>>(a);
    return cudaGetLastError();
  });
}

cudaError_t launch_add_upsampled_tokens(const TokenGridArgs& a, ElementType type, cudaStream_t stream) {
  return with_element_type(type, [&](auto zero) {
    using T = decltype(zero);
    const int64_t threads = a.batch * a.grid_h * a.grid_w * (a.dim / Pack<T>::size);
    if (!valid(a, Pack<T>::size) || (threads + kThreads - 1) / kThreads > 0x7fffffff) return cudaErrorInvalidValue;
    const float row_scale = static_cast<float>(a.sparse_h) / static_cast<float>(a.grid_h);
    const float col_scale = static_cast<float>(a.sparse_w) / static_cast<float>(a.grid_w);
    add_upsampled_tokens_kernel<T>
        <<<static_cast<unsigned>((threads + kThreads - 1) / kThreads), kThreads, 0, stream>>>(a, row_scale, col_scale);
    return cudaGetLastError();
  });
}

}  // namespace ditgen::cuda
