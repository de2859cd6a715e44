// The integer linear: the int8 GEMM (the Hopper kernel with its epilogue; cuBLAS; on the CPU oneDNN or our AVX2
// kernel), zero-point corrections in int32, scales in float.
#include "ditgen/quant/int_gemm.h"

#include <algorithm>
#include <string>

#include "ditgen/quant/gemm_sm90_launch.h"
#include "ditgen/quant/int8_gemm_avx2.h"
#include "ditgen/quant/int8_linear_cpu.h"

namespace ditgen::quant {

namespace {

void require_matmul_operands(const at::Tensor& a, const at::Tensor& b) {
  require_int8(a, "the int8 GEMM's activations", 2);
  require_int8(b, "the int8 GEMM's weight", 2);
  if (a.size(1) != b.size(1)) {
    throw Error(ErrorKind::Usage, "int8 GEMM inner sizes differ: " + std::to_string(a.size(1)) + " and " +
                                      std::to_string(b.size(1)));
  }
}

void require_linear_operands(const QuantizedActivation& x, const QuantizedWeight& weight, const at::Tensor& bias) {
  if (x.values.dim() < 1 || x.values.size(-1) != weight.values.size(1)) {
    throw Error(ErrorKind::Usage, "the quantized linear's input width does not match its weight's " +
                                      std::to_string(weight.values.size(1)));
  }
  require_linear_bias(bias, weight.values.size(0));
  // A kernel given a pointer to another device's memory faults instead of failing: every part where x is.
  const at::Device device = x.values.device();
  for (const at::Tensor* part : {&x.scales, &x.sums, &weight.values, &weight.scales, &weight.zero_points, &bias}) {
    if (part->defined() && part->device() != device) {
      throw Error(ErrorKind::Usage, "the quantized linear's tensors are on different devices");
    }
  }
}

// cuBLAS's int8 GEMM through at::_int_mm takes M > 16 and K, N multiples of 8: zero rows and columns pad
// the operands to that (they add nothing to any dot product) and are cut from the result.
at::Tensor int8_matmul_cublas(const at::Tensor& a, const at::Tensor& b) {
  const int64_t m = a.size(0), n = b.size(0), k = a.size(1);
  const int64_t padded_m = std::max<int64_t>(m, 17), padded_n = (n + 7) / 8 * 8, padded_k = (k + 7) / 8 * 8;
  if (padded_m == m && padded_n == n && padded_k == k) return at::_int_mm(a.contiguous(), b.t());  // [M, N]
  const at::Tensor a_padded = at::constant_pad_nd(a, {0, padded_k - k, 0, padded_m - m});  // [M', K']
  const at::Tensor b_padded = at::constant_pad_nd(b, {0, padded_k - k, 0, padded_n - n});  // [N', K']
  return at::_int_mm(a_padded, b_padded.t()).slice(0, 0, m).slice(1, 0, n).contiguous();   // [M, N]
}

// The Hopper kernel computes the whole linear (gemm_sm90.h): bf16 output, symmetric activations, its
// sizes, an sm_90 device, and a build that holds it.
bool sm90_linear_runs(const QuantizedActivation& x, const QuantizedWeight& weight, at::ScalarType out_dtype) {
  if (!x.values.is_cuda() || out_dtype != at::kBFloat16 || x.zero_point != 0) return false;
  const int64_t k = weight.values.size(1);
  return gemm_sm90_runs(x.values.device(), x.values.numel() / std::max<int64_t>(k, 1), weight.values.size(0), k);
}

at::Tensor sm90_linear(const QuantizedActivation& x, const QuantizedWeight& weight, const at::Tensor& bias,
                       bool gelu) {
  const at::Tensor a = x.values.reshape({-1, weight.values.size(1)});  // [M, K] int8
  at::Tensor sums, channel_zeros;
  if (weight.symmetry == Symmetry::Asymmetric) {
    sums = token_sums(x);                             // [M]
    channel_zeros = weight.zero_points.to(at::kInt);  // [N]
  }
  std::vector<int64_t> out_sizes = x.values.sizes().vec();
  out_sizes.back() = weight.values.size(0);
  return gemm_sm90(a, weight.values, x.scales, weight.scales, bias, gelu, sums, channel_zeros)
      .view(out_sizes);  // [..., N]
}

}  // namespace

at::Tensor int8_matmul(const at::Tensor& a, const at::Tensor& b) {
  require_matmul_operands(a, b);
  if (a.device() != b.device()) throw Error(ErrorKind::Usage, "the int8 GEMM's operands are on different devices");
  if (a.is_cuda()) return int8_matmul_cublas(a, b);  // [M, N] int32
  if (!a.is_cpu()) throw Error(ErrorKind::Usage, "the int8 GEMM runs on the CPU or CUDA");
  // LibTorch's CPU int8 GEMM (oneDNN) is exact and fast where the CPU has VNNI, a scalar loop elsewhere.
  if (cpu_has_vnni() || !cpu_has_avx2()) return at::_int_mm(a.contiguous(), b.t());  // [M, N] int32
  return int8_gemm_avx2(a, b);                                                   // [M, N] int32
}

at::Tensor int8_matmul_reference(const at::Tensor& a, const at::Tensor& b) {
  require_matmul_operands(a, b);
  return at::matmul(a.to(at::kInt), b.to(at::kInt).t());  // [M, N] int32
}

at::Tensor integer_linear(const QuantizedActivation& x, const QuantizedWeight& weight, const at::Tensor& bias,
                          at::ScalarType out_dtype, bool gelu) {
  require_linear_operands(x, weight, bias);
  if (sm90_linear_runs(x, weight, out_dtype)) return sm90_linear(x, weight, bias, gelu);  // [..., N]
  const int64_t in_features = weight.values.size(1);
  const at::Tensor x_rows = x.values.reshape({-1, in_features});  // [M, K] int8
  at::Tensor acc = int8_matmul(x_rows, weight.values);            // [M, N] int32
  std::vector<int64_t> out_sizes = x.values.sizes().vec();
  out_sizes.back() = weight.values.size(0);
  if (acc.is_cpu()) {
    const at::Tensor y = dequantize_product_cpu(acc, x, weight, bias);                     // [M, N] float32
    return (gelu ? at::gelu(y, "tanh") : y).reshape(out_sizes).to(out_dtype);              // [..., N]
  }
  // CUDA without the Hopper kernel: LibTorch ops, in place where they can be.
  const at::Tensor weight_zero = weight.zero_points.unsqueeze(0);  // [1, N] int32
  if (weight.symmetry == Symmetry::Asymmetric) {
    acc.addcmul_(x_rows.sum(1, /*keepdim=*/true, at::kInt), weight_zero, /*value=*/-1);  // [M, N]
  }
  if (x.zero_point != 0) {
    const at::Tensor weight_sums = weight.values.sum(1, /*keepdim=*/false, at::kInt).unsqueeze(0);  // [1, N]
    acc.sub_(x.zero_point * weight_sums - in_features * x.zero_point * weight_zero);              // [M, N]
  }
  const at::Tensor x_scales = x.scales.reshape({-1, 1});                // [M, 1]
  at::Tensor y = x_scales * weight.scales.unsqueeze(0);                 // [M, N] float
  y.mul_(acc);  // acc converted to float once, then scaled: the same rounding as acc.to(float) * scales
  if (bias.defined()) y.add_(bias.to(at::kFloat));
  if (gelu) y = at::gelu(y, "tanh");
  return y.reshape(out_sizes).to(out_dtype);  // [..., N]
}

at::Tensor integer_linear_reference(const QuantizedActivation& x, const QuantizedWeight& weight,
                                    const at::Tensor& bias) {
  require_linear_operands(x, weight, bias);
  return at::linear(dequantize(x), dequantize(weight), bias.defined() ? bias.to(at::kFloat) : bias);  // [..., N]
}

at::Tensor dynamic_int8_linear(const at::Tensor& x, const QuantizedWeight& weight, const at::Tensor& bias) {
  return integer_linear(quantize_per_token(x), weight, bias, x.scalar_type());
}

at::Tensor dynamic_int8_linear_reference(const at::Tensor& x, const QuantizedWeight& weight, const at::Tensor& bias) {
  return at::linear(fake_quantize_per_token(x), dequantize(weight), bias.defined() ? bias.to(at::kFloat) : bias);
}

}  // namespace ditgen::quant
