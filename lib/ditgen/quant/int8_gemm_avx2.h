// An exact int8 x int8 -> int32 GEMM for x86 CPUs with AVX2 but no VNNI, because there LibTorch's CPU
// at::_int_mm is a scalar loop (some 60x slower than fp32 at::linear; docs/QUANT.md, "CPU speed"). Where the CPU
// has VNNI, at::_int_mm (oneDNN) is exact and 3-4x faster than fp32, and int8_matmul uses it instead.
//
// Exact: both operands are sign-extended to int16 and multiplied with _mm256_madd_epi16, which sums each pair
// of int16 products into int32 without saturating (the largest pair, 2 x (-128)^2 = 32768, fits easily);
// _mm256_maddubs_epi16 (u8 x s8) would saturate its int16 pair sums, so it is not used. The int32 sums wrap
// modulo 2^32 like any int32 accumulation, so the result equals an int32 reference bit for bit for every
// K; it equals the true product while K x 128^2 < 2^31, i.e. K < 131072.
//
// The library is built for plain x86-64: the kernel is compiled with __attribute__((target("avx2"))) and
// must only be called where cpu_has_avx2() (int8_matmul checks, and falls back to at::_int_mm otherwise).
#pragma once

#include <ATen/ATen.h>

namespace ditgen::quant {

// True where this CPU runs AVX2, and AVX-512 VNNI or AVX-VNNI (checked at run time).
bool cpu_has_avx2();
bool cpu_has_vnni();

// a [M, K] int8 times b [N, K] int8 transposed -> int32 [M, N], exactly, for any M, N, K (zeros when K = 0). CPU
// tensors of those dtypes and shapes only (int8_matmul checks them), and only where cpu_has_avx2(). Splits the rows of
// a over at::get_num_threads() threads.
at::Tensor int8_gemm_avx2(const at::Tensor& a, const at::Tensor& b);

}  // namespace ditgen::quant
