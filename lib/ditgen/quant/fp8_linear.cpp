// FP8 weights and activations, and the FP8 linear through cuBLASLt.
#include "ditgen/quant/fp8_linear.h"

#include <optional>
#include <string>
#include <vector>

#include "ditgen/quant/gemm_sm90_launch.h"
#include "ditgen/quant/quantizer.h"
#include "ditgen/quant/token_quant.h"

#ifdef DITGEN_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

namespace ditgen::quant {

namespace {

constexpr double kE4M3Max = 448.0;

// Per-row scales absmax / 448 of rows [R, C] (1 where a row is all zero), float32 [R].
at::Tensor fp8_row_scales(const at::Tensor& rows) {
  const at::Tensor absmax = rows.abs().amax(1);  // [R]
  return at::where(absmax > 0, absmax / kE4M3Max, at::ones_like(absmax));
}

at::Tensor to_e4m3(const at::Tensor& rows, const at::Tensor& scales) {
  return rows.div(scales.unsqueeze(1)).to(at::kFloat8_e4m3fn);  // [R, C]; |values| <= 448, no saturation needed
}

// Which FP8 GEMM takes tokens [M, K] on `device` for weight [N, K] and a bf16 output: the Hopper kernel, cuBLASLt's
// (sm_89+, K and N multiples of 16), or neither.
enum class Fp8Gemm { Sm90, ScaledMm, None };

Fp8Gemm fp8_gemm_for(const at::Device& device, int64_t m, const Fp8Weight& weight) {
#ifdef DITGEN_HAVE_CUDA
  const int64_t n = weight.values.size(0), k = weight.values.size(1);
  if (!device.is_cuda()) return Fp8Gemm::None;
  if (gemm_sm90_runs(device, m, n, k)) return Fp8Gemm::Sm90;
  if (k % 16 != 0 || n % 16 != 0) return Fp8Gemm::None;
  const auto* props = at::cuda::getDeviceProperties(device.index());
  return props->major * 10 + props->minor >= 89 ? Fp8Gemm::ScaledMm : Fp8Gemm::None;
#else
  (void)device, (void)m, (void)weight;
  return Fp8Gemm::None;
#endif
}

}  // namespace

Fp8Weight quantize_weight_fp8(const at::Tensor& weight) {
  require_float(weight, "the weight to quantize");
  if (weight.dim() != 2) throw Error(ErrorKind::Usage, "a weight to quantize must be 2-D [out, in]");
  require_finite(weight, "the weight to quantize", ErrorKind::Model);
  at::NoGradGuard no_grad;
  const at::Tensor rows = weight.detach().to(at::kFloat);  // [out, in]
  const at::Tensor scales = fp8_row_scales(rows);          // [out]
  return {to_e4m3(rows, scales).contiguous(), scales.contiguous()};
}

at::Tensor dequantize(const Fp8Weight& weight) {
  return weight.values.to(at::kFloat) * weight.scales.unsqueeze(1);  // [out, in]
}

QuantizedActivation quantize_per_token_fp8(const at::Tensor& x) {
  return token_quant_runs_kernel(x) ? quantize_per_token_fp8_kernel(x) : quantize_per_token_fp8_reference(x);
}

QuantizedActivation quantize_per_token_fp8_reference(const at::Tensor& x) {
  require_float(x, "the activation to quantize");
  at::NoGradGuard no_grad;
  const at::Tensor rows = x.reshape({-1, x.size(-1)}).to(at::kFloat);  // [M, K]
  const at::Tensor scales = fp8_row_scales(rows);                       // [M]
  QuantizedActivation out;
  out.values = to_e4m3(rows, scales).reshape(x.sizes());               // [..., K]
  out.scales = scales.reshape(x.sizes().slice(0, x.dim() - 1));        // [...]
  return out;
}

at::Tensor fake_quantize_per_token_fp8(const at::Tensor& x) {
  return dequantize(quantize_per_token_fp8_reference(x));  // [..., K] float32
}

at::Tensor fp8_linear(const at::Tensor& x, const Fp8Weight& weight, const at::Tensor& bias, bool gelu) {
  const int64_t k = weight.values.size(1);
  if (x.scalar_type() != at::kBFloat16 || !token_quant_runs_kernel(x) ||
      fp8_gemm_for(x.device(), x.numel() / k, weight) == Fp8Gemm::None) {
    const at::Tensor y = fp8_linear_reference(x, weight, bias);  // [..., N]
    return gelu ? at::gelu(y, "tanh") : y;
  }
  return fp8_linear(quantize_per_token_fp8_kernel(x), weight, bias, at::kBFloat16, gelu);  // [..., N]
}

at::Tensor fp8_linear(const QuantizedActivation& x, const Fp8Weight& weight, const at::Tensor& bias,
                      at::ScalarType out_dtype, bool gelu) {
  const int64_t k = weight.values.size(1), n = weight.values.size(0);
  if (x.values.scalar_type() != at::kFloat8_e4m3fn || x.values.dim() < 1 || x.values.size(-1) != k)
    throw Error(ErrorKind::Usage, "the FP8 linear takes e4m3 tokens of its weight's width " + std::to_string(k));
  std::vector<int64_t> out_sizes = x.values.sizes().vec();
  out_sizes.back() = n;
  const at::Tensor a = x.values.reshape({-1, k});  // [M, K] e4m3
  const Fp8Gemm gemm = out_dtype == at::kBFloat16 ? fp8_gemm_for(x.values.device(), a.size(0), weight) : Fp8Gemm::None;
  if (gemm == Fp8Gemm::Sm90)
    return gemm_sm90(a, weight.values, x.scales, weight.scales, bias, gelu).view(out_sizes);  // [..., N]
  at::Tensor y;
  if (gemm == Fp8Gemm::ScaledMm) {
    const at::Tensor scale_a = x.scales.reshape({-1, 1}).to(at::kFloat);  // [M, 1]
    const at::Tensor scale_b = weight.scales.reshape({1, n});             // [1, N]
    const std::optional<at::Tensor> bias_bf16 =
        bias.defined() ? std::optional<at::Tensor>(bias.to(at::kBFloat16)) : std::nullopt;
    y = at::_scaled_mm(a.contiguous(), weight.values.t(), scale_a, scale_b, bias_bf16, std::nullopt, at::kBFloat16,
                       /*use_fast_accum=*/false).view(out_sizes);  // [..., N]
  } else {
    y = at::linear(dequantize(x), dequantize(weight), bias.defined() ? bias.to(at::kFloat) : bias).to(out_dtype);
  }
  return gelu ? at::gelu(y, "tanh") : y;
}

at::Tensor fp8_linear_reference(const at::Tensor& x, const Fp8Weight& weight, const at::Tensor& bias) {
  const at::Tensor y = at::linear(fake_quantize_per_token_fp8(x), dequantize(weight),
                                  bias.defined() ? bias.to(at::kFloat) : bias);  // [..., N]
  return y.to(x.scalar_type());
}

}  // namespace ditgen::quant
