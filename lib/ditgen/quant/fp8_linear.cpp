// FP8 weights and activations, and the FP8 linear through cuBLASLt.
#include "ditgen/quant/fp8_linear.h"

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

bool scaled_mm_runs(const at::Tensor& x, const Fp8Weight& weight) {
#ifdef DITGEN_HAVE_CUDA
  if (!x.is_cuda() || x.scalar_type() != at::kBFloat16 || !token_quant_runs_kernel(x)) return false;
  if (weight.values.size(1) % 16 != 0 || weight.values.size(0) % 16 != 0) return false;
  const auto* props = at::cuda::getDeviceProperties(x.get_device());
  return props->major * 10 + props->minor >= 89;
#else
  (void)x, (void)weight;
  return false;
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

at::Tensor fake_quantize_per_token_fp8(const at::Tensor& x) {
  require_float(x, "the activation to quantize");
  at::NoGradGuard no_grad;
  const at::Tensor rows = x.reshape({-1, x.size(-1)}).to(at::kFloat);  // [M, K]
  const at::Tensor scales = fp8_row_scales(rows);                       // [M]
  return (to_e4m3(rows, scales).to(at::kFloat) * scales.unsqueeze(1)).reshape(x.sizes());  // [..., K]
}

at::Tensor fp8_linear(const at::Tensor& x, const Fp8Weight& weight, const at::Tensor& bias, bool gelu) {
  const int64_t k = weight.values.size(1), n = weight.values.size(0);
  const bool sm90 = x.scalar_type() == at::kBFloat16 && token_quant_runs_kernel(x) &&
                    gemm_sm90_runs(x.device(), x.numel() / k, n, k);
  if (!sm90 && !scaled_mm_runs(x, weight)) {
    const at::Tensor y = fp8_linear_reference(x, weight, bias);  // [..., N]
    return gelu ? at::gelu(y, "tanh") : y;
  }
  const Fp8Tokens q = quantize_per_token_fp8_kernel(x);
  const at::Tensor a = q.values.reshape({-1, k});  // [M, K] e4m3
  std::vector<int64_t> out_sizes = x.sizes().vec();
  out_sizes.back() = n;
  if (sm90) return gemm_sm90(a, weight.values, q.scales, weight.scales, bias, gelu).view(out_sizes);  // [..., N]
  const at::Tensor scale_a = q.scales.reshape({-1, 1});      // [M, 1]
  const at::Tensor scale_b = weight.scales.reshape({1, n});  // [1, N]
  const std::optional<at::Tensor> bias_bf16 =
      bias.defined() ? std::optional<at::Tensor>(bias.to(at::kBFloat16)) : std::nullopt;
  const at::Tensor y = at::_scaled_mm(a, weight.values.t(), scale_a, scale_b, bias_bf16, std::nullopt,
                                      at::kBFloat16, /*use_fast_accum=*/false).view(out_sizes);  // [..., N]
  return gelu ? at::gelu(y, "tanh") : y;
}

at::Tensor fp8_linear_reference(const at::Tensor& x, const Fp8Weight& weight, const at::Tensor& bias) {
  const at::Tensor y = at::linear(fake_quantize_per_token_fp8(x), dequantize(weight),
                                  bias.defined() ? bias.to(at::kFloat) : bias);  // [..., N]
  return y.to(x.scalar_type());
}

}  // namespace ditgen::quant
