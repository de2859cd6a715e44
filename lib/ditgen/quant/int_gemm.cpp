// The integer linear: the int8 GEMM (our AVX2 kernel, else at::_int_mm), zero-point corrections in int32,
// scales in float.
#include "ditgen/quant/int_gemm.h"

#include <string>

#include "ditgen/quant/int8_gemm_avx2.h"

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
}

}  // namespace

at::Tensor int8_matmul(const at::Tensor& a, const at::Tensor& b) {
  require_matmul_operands(a, b);
  if (!a.is_cpu() || !b.is_cpu()) throw Error(ErrorKind::Usage, "the int8 GEMM runs on the CPU only");
  if (cpu_has_avx2()) return int8_gemm_avx2(a, b);  // [M, N] int32
  return at::_int_mm(a.contiguous(), b.t());         // [M, N] int32: exact, but a scalar loop
}

at::Tensor int8_matmul_reference(const at::Tensor& a, const at::Tensor& b) {
  require_matmul_operands(a, b);
  return at::matmul(a.to(at::kInt), b.to(at::kInt).t());  // [M, N] int32
}

at::Tensor integer_linear(const QuantizedActivation& x, const QuantizedWeight& weight, const at::Tensor& bias) {
  require_linear_operands(x, weight, bias);
  const int64_t in_features = weight.values.size(1);
  const at::Tensor x_rows = x.values.reshape({-1, in_features});  // [M, K] int8
  // In place where it can be: every fresh [M, N] tensor costs LibTorch's allocator new zeroed pages, which took
  // longer than the GEMM itself at the model's shapes.
  at::Tensor acc = int8_matmul(x_rows, weight.values);            // [M, N] int32
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
  std::vector<int64_t> out_sizes = x.values.sizes().vec();
  out_sizes.back() = weight.values.size(0);
  return y.reshape(out_sizes);  // [..., N]
}

at::Tensor integer_linear_reference(const QuantizedActivation& x, const QuantizedWeight& weight,
                                    const at::Tensor& bias) {
  require_linear_operands(x, weight, bias);
  return at::linear(dequantize(x), dequantize(weight), bias.defined() ? bias.to(at::kFloat) : bias);  // [..., N]
}

at::Tensor dynamic_int8_linear(const at::Tensor& x, const QuantizedWeight& weight, const at::Tensor& bias) {
  return integer_linear(quantize_per_token(x), weight, bias);
}

at::Tensor dynamic_int8_linear_reference(const at::Tensor& x, const QuantizedWeight& weight, const at::Tensor& bias) {
  return at::linear(fake_quantize_per_token(x), dequantize(weight), bias.defined() ? bias.to(at::kFloat) : bias);
}

}  // namespace ditgen::quant
