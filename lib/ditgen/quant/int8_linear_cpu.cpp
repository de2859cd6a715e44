// Per-token quantization and the dequantizing epilogue of the integer linear on the CPU, as plain loops over
// rows that GCC vectorizes: each loop is compiled for AVX2 and for plain x86-64, picked at load time
// (target_clones), since the library itself is built for plain x86-64.
#include "ditgen/quant/int8_linear_cpu.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include <ATen/record_function.h>

namespace ditgen::quant {

namespace {

constexpr float kGridMax = 127.f;  // the symmetric int8 grid of quantize_per_token
constexpr uint32_t kLargestFinite = 0x7f7fffffu;  // FLT_MAX's bits; above it only infinity and NaN

#if defined(__x86_64__) && defined(__GNUC__)
#define DITGEN_CPU_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define DITGEN_CPU_CLONES
#endif

// The largest |x| of a row as float bits: for non-negative floats the integer order is the float order, and
// infinity and NaN come above every finite value, so one integer max (which vectorizes) gives both.
DITGEN_CPU_CLONES uint32_t row_absmax_bits(const float* x, int64_t k) {
  uint32_t largest = 0;
  for (int64_t i = 0; i < k; ++i) {
    uint32_t bits;
    std::memcpy(&bits, x + i, sizeof bits);
    largest = std::max(largest, bits & 0x7fffffffu);
  }
  return largest;
}

// q = clamp(round_half_even(x / scale), -127, 127) and the sum of the q.
DITGEN_CPU_CLONES int32_t quantize_row(const float* x, int64_t k, float scale, int8_t* q) {
  int32_t sum = 0;
  for (int64_t i = 0; i < k; ++i) {
    const int32_t v = static_cast<int32_t>(std::min(std::max(std::nearbyint(x[i] / scale), -kGridMax), kGridMax));
    q[i] = static_cast<int8_t>(v);
    sum += v;
  }
  return sum;
}

// One output row in place: y = float(acc - token_sum * zero_w - column_term) * (token_scale * scale_w) + bias,
// each float stored (memcpy: the row is int32 memory) where its int32 was read.
DITGEN_CPU_CLONES void dequantize_row(int32_t* row, int64_t n, int32_t token_sum, float token_scale,
                                      const int32_t* zero_w, const int32_t* column_term, const float* scale_w,
                                      const float* bias) {
  for (int64_t j = 0; j < n; ++j) {
    const int32_t corrected = row[j] - token_sum * zero_w[j] - column_term[j];
    const float y = token_scale * scale_w[j] * static_cast<float>(corrected) + bias[j];
    std::memcpy(row + j, &y, sizeof y);
  }
}

}  // namespace

QuantizedActivation quantize_per_token_cpu(const at::Tensor& x) {
  RECORD_FUNCTION("ditgen::quantize_per_token_cpu", std::vector<c10::IValue>());  // named in profiles
  if (!x.is_cpu() || x.scalar_type() != at::kFloat || x.dim() < 1)
    throw Error(ErrorKind::Usage, "quantize_per_token_cpu takes a float32 CPU tensor");
  const at::Tensor rows = x.contiguous();
  const int64_t k = x.size(-1), m = k > 0 ? x.numel() / k : 0;
  const auto token_sizes = x.sizes().slice(0, x.dim() - 1);
  QuantizedActivation out;
  out.values = at::empty(x.sizes(), x.options().dtype(at::kChar));     // [..., K]
  out.scales = at::empty(token_sizes, x.options().dtype(at::kFloat));  // [...]
  out.sums = at::empty(token_sizes, x.options().dtype(at::kInt));      // [...]
  const float* in = rows.data_ptr<float>();
  int8_t* values = out.values.data_ptr<int8_t>();
  float* scales = out.scales.data_ptr<float>();
  int32_t* sums = out.sums.data_ptr<int32_t>();
  for (int64_t r = 0; r < m; ++r) {
    const uint32_t bits = row_absmax_bits(in + r * k, k);
    if (bits > kLargestFinite) throw Error(ErrorKind::Usage, "the activation to quantize has NaN or infinite values");
    float absmax;
    std::memcpy(&absmax, &bits, sizeof absmax);
    scales[r] = absmax > 0.f ? absmax / kGridMax : 1.f;  // affine_params' symmetric scale
    sums[r] = quantize_row(in + r * k, k, scales[r], values + r * k);
  }
  return out;
}

at::Tensor dequantize_product_cpu(const at::Tensor& acc, const QuantizedActivation& x, const QuantizedWeight& weight,
                                  const at::Tensor& bias) {
  RECORD_FUNCTION("ditgen::dequantize_product_cpu", std::vector<c10::IValue>());
  const int64_t m = acc.size(0), n = acc.size(1), k = weight.values.size(1);
  if (!acc.is_cpu() || acc.scalar_type() != at::kInt || !acc.is_contiguous())
    throw Error(ErrorKind::Usage, "dequantize_product_cpu takes a contiguous int32 CPU product");
  const at::Tensor token_scales = x.scales.reshape({-1}).to(at::kFloat).contiguous();  // [M]
  const at::Tensor sums = weight.symmetry == Symmetry::Asymmetric ? token_sums(x).contiguous()
                                                                  : at::zeros({m}, acc.options());  // [M] int32
  const at::Tensor zero_w = weight.zero_points.to(at::kInt).contiguous();  // [N]
  // The per-tensor activation zero point's terms, the same for every row: z_x sum_w[n] - K z_x z_w[n].
  const at::Tensor column_term =
      x.zero_point != 0 ? (x.zero_point * (weight.values.sum(1, false, at::kInt) - k * zero_w)).to(at::kInt).contiguous()
                        : at::zeros({n}, acc.options());  // [N] int32
  const at::Tensor scale_w = weight.scales.to(at::kFloat).contiguous();  // [N]
  const at::Tensor bias_f = bias.defined() ? bias.to(at::kFloat).contiguous() : at::zeros({n}, scale_w.options());
  // In place: no second [M, N] buffer (fresh pages from the allocator cost about as much as the loop).
  int32_t* acc_data = acc.data_ptr<int32_t>();
  const int32_t* row_sums = sums.data_ptr<int32_t>();
  const float* row_scales = token_scales.data_ptr<float>();
  const int32_t* column_zeros = zero_w.data_ptr<int32_t>();
  const int32_t* column_terms = column_term.data_ptr<int32_t>();
  const float* column_scales = scale_w.data_ptr<float>();
  const float* column_bias = bias_f.data_ptr<float>();
  for (int64_t r = 0; r < m; ++r) {
    dequantize_row(acc_data + r * n, n, row_sums[r], row_scales[r], column_zeros, column_terms, column_scales,
                   column_bias);
  }
  return acc.view(at::kFloat);  // [M, N] float32, acc's memory
}

}  // namespace ditgen::quant
