// Fused window attention for PT-DiT (see window_attention_kernels.h). Library flash kernels are built for long
// sequences: on 64-token windows their 128-query tiles run half empty, a 72-wide head runs in the 96-wide
// kernel, and the shifted windows need two gathers of the stream plus variable-length regions. Here one CTA
// owns one window of one head: it gathers the window's q, k, v rows into shared memory with asynchronous
// copies (all in flight at once; head dims padded with zeros to a multiple of 16), each warp computes 16 query
// rows with mma.sync m16n8k16 in fp32 (v's fragments through transposing ldmatrix), masks keys outside the
// window or the query's region, and stores its output rows straight to their stream rows. Scores stay in
// registers: a chunk of 64 keys at a time with an online softmax.
#include "ditgen/cuda/window_attention_kernels.h"

#include <type_traits>

#include "ditgen/cuda/element_type.cuh"

namespace ditgen::cuda {

namespace {

constexpr int kWarp = 32;
constexpr int kKeyChunk = 64;  // keys whose scores a warp holds at once (8 tiles of 8)

__host__ __device__ constexpr int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// Shared-memory rows: padded by 8 elements so that the fragment loads of 8 rows hit distinct banks (a row of
// 4 (mod 8) words maps the 8 rows of a fragment to 8 distinct groups of 4 banks).
__host__ __device__ constexpr int64_t qkv_row(int64_t dk) { return dk * 16 + 8; }  // elements of a q, k or v row

// 16-wide steps of the padded head dim: the kernel's instantiations.
constexpr int padded_steps(int64_t head_dim) { return head_dim <= 64 ? 4 : head_dim <= 80 ? 5 : 8; }

template <typename T> struct Pair;
template <> struct Pair<__half> {
  __device__ static uint32_t pack(float lo, float hi) {
    const __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&h);
  }
};
template <> struct Pair<__nv_bfloat16> {
  __device__ static uint32_t pack(float lo, float hi) {
    const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&h);
  }
};

// c += a b for one 16x8 tile: a 16x16 (row-major fragment), b 16x8 (column-major), fp32 accumulators.
template <typename T>
__device__ inline void mma_16x8x16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
#else
  (void)c, (void)a, (void)b0, (void)b1;
  __trap();  // the launcher refuses GPUs older than Ampere
#endif
}

__device__ inline uint32_t load_pair(const void* p) { return *static_cast<const uint32_t*>(p); }

// 16 bytes global -> shared without a register round trip (Ampere's cp.async), waited for by wait_copies.
__device__ inline void copy_16_async(void* shared_address, const void* global_address) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const auto shared_offset = static_cast<unsigned>(__cvta_generic_to_shared(shared_address));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(shared_offset), "l"(global_address));
#else
  (void)shared_address, (void)global_address;
  __trap();
#endif
}
__device__ inline void wait_copies() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_all;\n" ::);
#endif
}

// B fragments of 16 keys x 8 dims (b[0]: keys 0-7, b[1]: keys 8-15) from row-major v: lanes 0-15 name the
// keys' rows, and the transposing load hands each lane the (2t, 2t + 1; g) elements mma wants.
__device__ inline void load_v_fragment(uint32_t (&b)[2], const void* row_address) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
               : "=r"(b[0]), "=r"(b[1])
               : "r"(static_cast<unsigned>(__cvta_generic_to_shared(row_address))));
#else
  (void)b, (void)row_address;
  __trap();
#endif
}

__device__ inline float quad_max(float v) {
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
  return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}
__device__ inline float quad_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

// kDk: 16-wide steps of the padded head dim. Launched with one warp per 16 queries of a window.
template <typename T, int kDk>
__global__ void __launch_bounds__(kWindowAttentionMaxTokens / 16 * kWarp) window_attention_kernel(WindowAttentionArgs a) {
  extern __shared__ uint4 shared[];
  const int n = static_cast<int>(a.window_tokens), hd = static_cast<int>(a.head_dim);
  const int queries = blockDim.x / kWarp * 16;  // n rounded up to 16
  const int64_t H = a.heads, D = H * hd, windows = a.tokens / n;
  const int64_t head = blockIdx.x % H, window = blockIdx.x / H % windows, image = blockIdx.x / H / windows;
  T* q_s = reinterpret_cast<T*>(shared);                      // [queries, qkv_row]
  T* k_s = q_s + queries * qkv_row(kDk);                      // [queries, qkv_row]
  T* v_s = k_s + queries * qkv_row(kDk);                      // [queries, qkv_row]
  int64_t* row_s = reinterpret_cast<int64_t*>(v_s + queries * qkv_row(kDk));  // [queries] stream rows
  int32_t* label_s = reinterpret_cast<int32_t*>(row_s + queries);             // [queries]

  for (int i = threadIdx.x; i < queries; i += blockDim.x) {
    const int64_t position = window * n + i;
    row_s[i] = i < n ? (a.order ? a.order[position] : position) : -1;
    label_s[i] = i < n && a.labels ? a.labels[position] : 0;
  }
  __syncthreads();
  // q, k, v rows in 8-element packs; padding (rows past n, dims past hd) is zero so that it adds nothing.
  const T* qkv = static_cast<const T*>(a.qkv) + image * a.tokens * 3 * D + head * hd;
  constexpr int kPacks = kDk * 2;
  for (int c = threadIdx.x; c < queries * kPacks; c += blockDim.x) {
    const int i = c / kPacks, pack = c % kPacks;
    const int64_t at = i * qkv_row(kDk) + pack * 8;
    if (i < n && pack * 8 < hd) {
      const T* src = qkv + row_s[i] * 3 * D + pack * 8;
      copy_16_async(q_s + at, src);
      copy_16_async(k_s + at, src + D);
      copy_16_async(v_s + at, src + 2 * D);
    } else {
      const uint4 zero = make_uint4(0, 0, 0, 0);
      *reinterpret_cast<uint4*>(q_s + at) = zero;
      *reinterpret_cast<uint4*>(k_s + at) = zero;
      *reinterpret_cast<uint4*>(v_s + at) = zero;
    }
  }
  wait_copies();
  __syncthreads();

  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp, g = lane / 4, t = lane % 4;
  const int row0 = warp * 16;
  // This warp's queries as A fragments: rows g and g + 8, columns 2t, 2t + 1 and 8 further.
  uint32_t qa[kDk][4];
#pragma unroll
  for (int kk = 0; kk < kDk; ++kk) {
    const T* r = q_s + (row0 + g) * qkv_row(kDk) + kk * 16 + 2 * t;
    qa[kk][0] = load_pair(r);
    qa[kk][1] = load_pair(r + 8 * qkv_row(kDk));
    qa[kk][2] = load_pair(r + 8);
    qa[kk][3] = load_pair(r + 8 * qkv_row(kDk) + 8);
  }
  const int32_t label[2] = {label_s[row0 + g], label_s[row0 + g + 8]};
  const float scale = a.scale * 1.4426950408889634f;  // exp(x) = exp2(x log2 e)
  float o[kPacks][4] = {};   // output tiles of 8 dims: rows g (0, 1) and g + 8 (2, 3)
  float running_max[2] = {-INFINITY, -INFINITY}, running_sum[2] = {0.f, 0.f};

  for (int key0 = 0; key0 < queries; key0 += kKeyChunk) {
    float s[kKeyChunk / 8][4];  // scores of this chunk's key tiles of 8
#pragma unroll
    for (int j = 0; j < kKeyChunk / 8; ++j) {
      s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
      if (key0 + j * 8 >= queries) continue;
      const T* kr = k_s + (key0 + j * 8 + g) * qkv_row(kDk) + 2 * t;
#pragma unroll
      for (int kk = 0; kk < kDk; ++kk) mma_16x8x16<T>(s[j], qa[kk], load_pair(kr + kk * 16), load_pair(kr + kk * 16 + 8));
    }
    float chunk_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int j = 0; j < kKeyChunk / 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int key = key0 + j * 8 + 2 * t + (e & 1);
        const bool attend = key < n && label_s[key] == label[e / 2];
        s[j][e] = attend ? s[j][e] * scale : -INFINITY;
        chunk_max[e / 2] = fmaxf(chunk_max[e / 2], s[j][e]);
      }
    float base[2], rescale[2], chunk_sum[2] = {0.f, 0.f};
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const float m = fmaxf(running_max[r], quad_max(chunk_max[r]));
      base[r] = m == -INFINITY ? 0.f : m;  // no key yet: every exp is 0, none is NaN
      rescale[r] = exp2f(running_max[r] - base[r]);
      running_max[r] = m;
    }
    uint32_t pa[kKeyChunk / 16][4];  // probabilities as A fragments of 16 keys
#pragma unroll
    for (int j = 0; j < kKeyChunk / 8; ++j) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[j][e] = exp2f(s[j][e] - base[e / 2]);
        chunk_sum[e / 2] += s[j][e];
      }
      pa[j / 2][(j % 2) * 2] = Pair<T>::pack(s[j][0], s[j][1]);
      pa[j / 2][(j % 2) * 2 + 1] = Pair<T>::pack(s[j][2], s[j][3]);
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) running_sum[r] = running_sum[r] * rescale[r] + quad_sum(chunk_sum[r]);
#pragma unroll
    for (int d = 0; d < kPacks; ++d) {
      o[d][0] *= rescale[0], o[d][1] *= rescale[0], o[d][2] *= rescale[1], o[d][3] *= rescale[1];
      if (d * 8 >= hd) continue;
#pragma unroll
      for (int kb = 0; kb < kKeyChunk / 16; ++kb) {
        if (key0 + kb * 16 >= queries) continue;
        uint32_t b[2];
        load_v_fragment(b, v_s + (key0 + kb * 16 + lane % 16) * qkv_row(kDk) + d * 8);
        mma_16x8x16<T>(o[d], pa[kb], b[0], b[1]);
      }
    }
  }

  // Normalised rows through this warp's own q rows (its fragments are in registers), then 16-byte stores.
  const float inverse[2] = {1.f / running_sum[0], 1.f / running_sum[1]};
  __syncwarp();
#pragma unroll
  for (int d = 0; d < kPacks; ++d) {
    T* r = q_s + (row0 + g) * qkv_row(kDk) + d * 8 + 2 * t;
    *reinterpret_cast<uint32_t*>(r) = Pair<T>::pack(o[d][0] * inverse[0], o[d][1] * inverse[0]);
    *reinterpret_cast<uint32_t*>(r + 8 * qkv_row(kDk)) = Pair<T>::pack(o[d][2] * inverse[1], o[d][3] * inverse[1]);
  }
  __syncwarp();
  T* out = static_cast<T*>(a.out) + image * a.tokens * D + head * hd;
  const int packs = hd / 8;
  for (int c = lane; c < 16 * packs; c += kWarp) {
    const int i = row0 + c / packs, pack = c % packs;
    if (i < n)
      *reinterpret_cast<uint4*>(out + row_s[i] * D + pack * 8) =
          *reinterpret_cast<const uint4*>(q_s + i * qkv_row(kDk) + pack * 8);
  }
}

template <typename T, int kDk>
cudaError_t launch_padded(const WindowAttentionArgs& a, cudaStream_t stream) {
  const int64_t queries = round_up(a.window_tokens, 16);
  const int64_t bytes = window_attention_shared_bytes(a.window_tokens, a.head_dim, sizeof(T));
  cudaError_t error = cudaFuncSetAttribute(window_attention_kernel<T, kDk>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
  if (error != cudaSuccess) return error;
  const int64_t ctas = a.batch * (a.tokens / a.window_tokens) * a.heads;
  window_attention_kernel<T, kDk>
      <<<static_cast<unsigned>(ctas), static_cast<unsigned>(queries / 16 * kWarp), bytes, stream>>>(a);
  return cudaGetLastError();
}

template <typename T>
cudaError_t launch_typed(const WindowAttentionArgs& a, cudaStream_t stream) {
  if constexpr (std::is_same_v<T, float>) {
    return cudaErrorInvalidValue;
  } else {
    switch (padded_steps(a.head_dim)) {
      case 4: return launch_padded<T, 4>(a, stream);
      case 5: return launch_padded<T, 5>(a, stream);
      default: return launch_padded<T, 8>(a, stream);
    }
  }
}

}  // namespace

int64_t window_attention_shared_bytes(int64_t window_tokens, int64_t head_dim, int64_t element_size) {
  const int64_t queries = round_up(window_tokens, 16), dk = padded_steps(head_dim);
  return 3 * queries * qkv_row(dk) * element_size +
         queries * static_cast<int64_t>(sizeof(int64_t) + sizeof(int32_t));
}

cudaError_t launch_window_attention(const WindowAttentionArgs& args, ElementType type, cudaStream_t stream) {
  if (args.head_dim % 8 != 0 || args.head_dim > kWindowAttentionMaxHeadDim || args.window_tokens < 1 ||
      args.window_tokens > kWindowAttentionMaxTokens || args.tokens % args.window_tokens != 0)
    return cudaErrorInvalidValue;
  if (args.batch * args.tokens == 0) return cudaSuccess;
  return with_element_type(type, [&](auto zero) { return launch_typed<decltype(zero)>(args, stream); });
}

}  // namespace ditgen::cuda
