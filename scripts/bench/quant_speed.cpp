// The CPU speed figure of docs/QUANT.md (not a test): at the default model's layer shapes and M = 512 tokens,
// fp32 at::linear against the int8 GEMM (int8_matmul: at::_int_mm where the CPU has VNNI, else the AVX2 kernel),
// LibTorch's at::_int_mm, and the whole dynamic_int8_linear. Each figure is the best of 50 calls. Build and run: see
// docs/QUANT.md, "CPU speed".
#include <algorithm>
#include <chrono>
#include <cstdio>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "ditgen/quant/int_gemm.h"

using namespace ditgen::quant;

namespace {

template <class Call>
double best_ms(const Call& call, int repeats) {
  double best = 1e30;
  for (int i = 0; i < repeats; ++i) {
    const auto start = std::chrono::steady_clock::now();
    call();
    best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  return best;
}

}  // namespace

int main() {
  at::manual_seed(0);
  const int64_t tokens = 512;
  const int64_t layers[][2] = {{256, 768}, {256, 256}, {256, 640}, {640, 256}};  // K, N
  std::printf("threads %d\n", at::get_num_threads());
  std::printf("K -> N      fp32 linear  int8_matmul  at::_int_mm  int8 linear  int8 linear / fp32\n");
  for (const auto& layer : layers) {
    const int64_t k = layer[0], n = layer[1];
    const at::Tensor x = at::randn({tokens, k}), weight = at::randn({n, k}) / 16, bias = at::randn({n});
    const QuantizedWeight q = quantize_weight(weight, {8, Symmetry::Asymmetric, ClipSearch::Mse});
    const at::Tensor x_q = quantize_per_token(x).values;  // [M, K] int8
    const auto fp32 = [&] { at::linear(x, weight, bias); };
    const auto gemm = [&] { int8_matmul(x_q, q.values); };
    const auto int_mm = [&] { at::_int_mm(x_q, q.values.t()); };
    const auto linear = [&] { dynamic_int8_linear(x, q, bias); };
    for (int i = 0; i < 5; ++i) fp32(), gemm(), linear();  // warm up
    const double fp32_ms = best_ms(fp32, 50), gemm_ms = best_ms(gemm, 50), int_mm_ms = best_ms(int_mm, 10);
    const double linear_ms = best_ms(linear, 50);
    std::printf("%4ld -> %-4ld %8.3f ms  %8.3f ms  %8.3f ms  %8.3f ms  %.2fx\n", k, n, fp32_ms, gemm_ms, int_mm_ms,
                linear_ms, linear_ms / fp32_ms);
  }
}
