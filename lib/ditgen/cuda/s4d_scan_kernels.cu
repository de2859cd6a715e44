// The fused bidirectional S4D scan (s4d_scan_kernels.h): the SSM run as its recurrence, chunked so that
// every chunk of every channel and direction is a thread group, instead of FFT convolutions at 2L. Each
// thread carries kS4dModesPerThread complex modes of one channel in registers; a power-of-two group of
// lanes holds all of a channel's modes, and pass 3 sums them with shuffles. u is read twice and y written
// once; the FFT path moves complex spectra of 2L points several times.
#include "ditgen/cuda/s4d_scan_kernels.h"

#include "ditgen/cuda/element_type.cuh"

namespace ditgen::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kModes = static_cast<int>(kS4dModesPerThread);

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Lanes that hold one channel's modes: the smallest power of two that covers them.
int lane_group(int64_t modes) {
  int group = 1;
  while (group * kS4dModesPerThread < modes) group *= 2;
  return group;
}

// One thread of passes 1 and 3: sample b, direction d, chunk k, channel c, mode group g.
struct Lane {
  int64_t b, d, k, c, g;
};

__device__ inline Lane lane_of(int64_t t, const S4dScanArgs& a, int64_t chunks, int group) {
  Lane x;
  x.g = t % group;
  t /= group;
  x.c = t % a.channels;
  t /= a.channels;
  x.k = t % chunks;
  t /= chunks;
  x.d = t % 2;
  x.b = t / 2;
  return x;
}

// Element (re) of mode m of direction d's parameters for channel c: [2, H, M, 2].
__device__ inline int64_t parameter_index(const S4dScanArgs& a, int64_t d, int64_t c, int64_t m) {
  return ((d * a.heads + (a.heads == 1 ? 0 : c)) * a.modes + m) * 2;
}

// Element (re) of the state of mode m in the workspace: [B, 2, chunks, C, M, 2].
__device__ inline int64_t state_index(const S4dScanArgs& a, int64_t chunks, int64_t b, int64_t d, int64_t k,
                                      int64_t c, int64_t m) {
  return ((((b * 2 + d) * chunks + k) * a.channels + c) * a.modes + m) * 2;
}

// The lane's modes of a and b (zero beyond M: such modes stay zero and add nothing).
__device__ inline void load_modes(const S4dScanArgs& a, const Lane& x, float* ar, float* ai, float* br, float* bi) {
#pragma unroll
  for (int i = 0; i < kModes; ++i) {
    const int64_t m = x.g * kModes + i;
    const bool real = m < a.modes;
    const int64_t p = real ? parameter_index(a, x.d, x.c, m) : 0;
    ar[i] = real ? a.a[p] : 0.f;
    ai[i] = real ? a.a[p + 1] : 0.f;
    br[i] = real ? a.b[p] : 0.f;
    bi[i] = real ? a.b[p + 1] : 0.f;
  }
}

// x <- a x + b u for the lane's modes (complex).
__device__ inline void advance(const float* ar, const float* ai, const float* br, const float* bi, float* xr,
                               float* xi, float u) {
#pragma unroll
  for (int i = 0; i < kModes; ++i) {
    const float r = fmaf(ar[i], xr[i], fmaf(-ai[i], xi[i], br[i] * u));
    xi[i] = fmaf(ar[i], xi[i], fmaf(ai[i], xr[i], bi[i] * u));
    xr[i] = r;
  }
}

// The sequence position of step j of the lane's chunk (direction 1 runs backwards), or -1 past the end.
__device__ inline int64_t position(const S4dScanArgs& a, const Lane& x, int64_t j) {
  const int64_t p = x.k * a.chunk + j;
  if (p >= a.length) return -1;
  return x.d == 0 ? p : a.length - 1 - p;
}

// Pass 1: each chunk's final state from a zero state.
template <typename T>
__global__ void __launch_bounds__(kThreads) chunk_states_kernel(S4dScanArgs a, int64_t chunks, int group) {
  const int64_t t = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (t >= a.batch * 2 * chunks * a.channels * group) return;
  const Lane x = lane_of(t, a, chunks, group);
  float ar[kModes], ai[kModes], br[kModes], bi[kModes], xr[kModes] = {}, xi[kModes] = {};
  load_modes(a, x, ar, ai, br, bi);
  const T* u = static_cast<const T*>(a.u) + x.b * a.length * a.channels + x.c;
  for (int64_t j = 0; j < a.chunk; ++j) {
    const int64_t l = position(a, x, j);
    if (l < 0) break;
    advance(ar, ai, br, bi, xr, xi, to_float(u[l * a.channels]));
  }
#pragma unroll
  for (int i = 0; i < kModes; ++i) {
    const int64_t m = x.g * kModes + i;
    if (m >= a.modes) break;
    const int64_t s = state_index(a, chunks, x.b, x.d, x.k, x.c, m);
    a.states[s] = xr[i];
    a.states[s + 1] = xi[i];
  }
}

// Pass 2: chunk k's slot becomes the state entering it, a^chunk (state entering k-1) + (k-1's final state).
__global__ void __launch_bounds__(kThreads) carry_kernel(S4dScanArgs a, int64_t chunks) {
  int64_t t = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (t >= a.batch * 2 * a.channels * a.modes) return;
  const int64_t m = t % a.modes;
  t /= a.modes;
  const int64_t c = t % a.channels;
  t /= a.channels;
  const int64_t d = t % 2, b = t / 2;
  const int64_t p = parameter_index(a, d, c, m);
  const float cr = a.a_chunk[p], ci = a.a_chunk[p + 1];
  float xr = 0.f, xi = 0.f;
  for (int64_t k = 0; k < chunks; ++k) {
    const int64_t s = state_index(a, chunks, b, d, k, c, m);
    const float sr = a.states[s], si = a.states[s + 1];
    a.states[s] = xr;
    a.states[s + 1] = xi;
    const float r = fmaf(cr, xr, fmaf(-ci, xi, sr));
    xi = fmaf(cr, xi, fmaf(ci, xr, si));
    xr = r;
  }
}

// Pass 3: every chunk again from its incoming state; y = 2 Re (sum of the modes) + D u. All lanes of a warp
// run the same number of steps, so the group's shuffles stay converged.
template <typename T>
__global__ void __launch_bounds__(kThreads) chunk_outputs_kernel(S4dScanArgs a, int64_t chunks, int group) {
  const int64_t t = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  const bool valid = t < a.batch * 2 * chunks * a.channels * group;
  const Lane x = lane_of(valid ? t : 0, a, chunks, group);
  float ar[kModes], ai[kModes], br[kModes], bi[kModes], xr[kModes] = {}, xi[kModes] = {};
  load_modes(a, x, ar, ai, br, bi);
#pragma unroll
  for (int i = 0; i < kModes; ++i) {
    const int64_t m = x.g * kModes + i;
    if (m < a.modes) {
      const int64_t s = state_index(a, chunks, x.b, x.d, x.k, x.c, m);
      xr[i] = a.states[s];
      xi[i] = a.states[s + 1];
    }
  }
  const float skip = a.skip[x.d * a.channels + x.c];
  const T* u = static_cast<const T*>(a.u) + x.b * a.length * a.channels + x.c;
  T* y = static_cast<T*>(a.y) + x.b * a.length * 2 * a.channels + x.d * a.channels + x.c;
  for (int64_t j = 0; j < a.chunk; ++j) {
    const int64_t l = valid ? position(a, x, j) : -1;
    const float ul = l >= 0 ? to_float(u[l * a.channels]) : 0.f;
    advance(ar, ai, br, bi, xr, xi, ul);
    float sum = 0.f;
#pragma unroll
    for (int i = 0; i < kModes; ++i) sum += xr[i];
    for (int offset = group / 2; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
    if (l >= 0 && x.g == 0) y[l * 2 * a.channels] = from_float<T>(fmaf(2.f, sum, skip * ul));
  }
}

template <typename T>
cudaError_t launch_typed(const S4dScanArgs& a, cudaStream_t stream) {
  const int64_t chunks = ceil_div(a.length, a.chunk);
  const int group = lane_group(a.modes);
  const int64_t lanes = a.batch * 2 * chunks * a.channels * group;
  chunk_states_kernel<T><<<ceil_div(lanes, kThreads), kThreads, 0, stream>>>(a, chunks, group);
  cudaError_t error = cudaGetLastError();
  if (error != cudaSuccess) return error;
  carry_kernel<<<ceil_div(a.batch * 2 * a.channels * a.modes, kThreads), kThreads, 0, stream>>>(a, chunks);
  error = cudaGetLastError();
  if (error != cudaSuccess) return error;
  chunk_outputs_kernel<T><<<ceil_div(lanes, kThreads), kThreads, 0, stream>>>(a, chunks, group);
  return cudaGetLastError();
}

}  // namespace

int64_t s4d_scan_chunk(int64_t batch, int64_t length, int64_t channels, int64_t modes) {
  const int64_t lanes_per_chunk = batch * 2 * channels * lane_group(modes);
  int64_t chunk = 32;
  while (chunk < 4096 && ceil_div(length, chunk) * lanes_per_chunk > (int64_t{1} << 21)) chunk *= 2;
  return chunk;
}

cudaError_t launch_s4d_scan(const S4dScanArgs& args, ElementType type, cudaStream_t stream) {
  return with_element_type(type, [&](auto zero) { return launch_typed<decltype(zero)>(args, stream); });
}

}  // namespace ditgen::cuda
