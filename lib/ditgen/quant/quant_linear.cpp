// The quantized linear module: int8 weight buffers, the integer path and the fake-quant reference.
#include "ditgen/quant/quant_linear.h"

#include <string>

#include "ditgen/quant/int_gemm.h"

namespace ditgen::quant {

QuantLinearImpl::QuantLinearImpl(const at::Tensor& weight, const at::Tensor& bias, const QuantSpec& weight_spec,
                                 ActivationMode activations, const QuantSpec& activation_spec)
    : QuantLinearImpl(quantize_weight(weight, weight_spec), bias, activations, activation_spec) {}

QuantLinearImpl::QuantLinearImpl(const torch::nn::Linear& linear, const QuantSpec& weight_spec,
                                 ActivationMode activations, const QuantSpec& activation_spec)
    : QuantLinearImpl(linear->weight, linear->bias, weight_spec, activations, activation_spec) {}

QuantLinearImpl::QuantLinearImpl(const QuantizedWeight& weight, const at::Tensor& bias, ActivationMode activations,
                                 const QuantSpec& activation_spec)
    : weight_bits_(weight.bits),
      weight_symmetry_(weight.symmetry),
      activations_(activations),
      static_activations_(activation_spec) {
  require_int8(weight.values, "the quantized weight", 2);
  const int64_t out_features = weight.values.size(0);
  if (weight.scales.numel() != out_features || weight.zero_points.numel() != out_features) {
    throw Error(ErrorKind::Model, "the quantized weight needs one scale and zero point per output channel");
  }
  if (bias.defined()) require_float(bias, "the quantized linear's bias");
  require_linear_bias(bias, out_features);
  at::NoGradGuard no_grad;
  weight_values_ = register_buffer("weight_values", weight.values.contiguous());
  weight_scales_ = register_buffer("weight_scales", weight.scales.to(at::kFloat).contiguous());
  weight_zero_points_ = register_buffer("weight_zero_points", weight.zero_points.to(at::kInt).contiguous());
  if (bias.defined()) bias_ = register_buffer("bias", bias.detach().to(at::kFloat).clone());
}

QuantLinearImpl::QuantLinearImpl(const Fp8Weight& weight, const at::Tensor& bias) : fp8_(true) {
  if (weight.values.scalar_type() != at::kFloat8_e4m3fn || weight.values.dim() != 2 ||
      weight.scales.numel() != weight.values.size(0))
    throw Error(ErrorKind::Model, "an FP8 weight needs e4m3 values [out, in] and one scale per output channel");
  if (bias.defined()) require_float(bias, "the FP8 linear's bias");
  require_linear_bias(bias, weight.values.size(0));
  at::NoGradGuard no_grad;
  weight_values_ = register_buffer("weight_values", weight.values.contiguous());
  weight_scales_ = register_buffer("weight_scales", weight.scales.to(at::kFloat).contiguous());
  if (bias.defined()) bias_ = register_buffer("bias", bias.detach().to(at::kFloat).clone());
}

void QuantLinearImpl::to(torch::Device device, torch::Dtype dtype, bool non_blocking) {
  to(dtype, non_blocking);
  to(device, non_blocking);
}

void QuantLinearImpl::to(torch::Dtype dtype, bool) {
  if (dtype != at::kFloat && dtype != at::kBFloat16 && dtype != at::kHalf)
    throw Error(ErrorKind::Usage, std::string("a quantized linear layer takes fp32, bf16 or fp16 inputs, not ") +
                                      c10::toString(dtype));
}

void QuantLinearImpl::to(torch::Device device, bool non_blocking) {
  torch::nn::Module::to(device, non_blocking);
  // Module::to re-seats the buffers' data in place, so the tensors held here follow.
}

QuantizedWeight QuantLinearImpl::quantized_weight() const {
  if (fp8_) throw Error(ErrorKind::Usage, "an FP8 layer has no integer weight");
  return {weight_values_, weight_scales_, weight_zero_points_, weight_bits_, weight_symmetry_};
}

at::Tensor QuantLinearImpl::forward(const at::Tensor& x) {
  if (use_reference_) return forward_reference(x);  // [..., N]
  if (fp8_) return fp8_linear(x, fp8_weight(), bias_);  // [..., N]
  switch (activations_) {
    case ActivationMode::None:
      return forward_reference(x);  // float activations: nothing for an integer GEMM to do
    case ActivationMode::DynamicPerToken:
      return dynamic_int8_linear(x, quantized_weight(), bias_);
    case ActivationMode::StaticPerTensor:
      if (calibrating_) {
        observe(x);
        return at::linear(x.to(at::kFloat), dequantize(quantized_weight()), bias_).to(x.scalar_type());  // [..., N]
      }
      return integer_linear(static_activations_.quantize(x), quantized_weight(), bias_, x.scalar_type());
  }
  return {};
}

at::Tensor QuantLinearImpl::forward_gelu(const at::Tensor& x) {
  if (fp8_ && !use_reference_) return fp8_linear(x, fp8_weight(), bias_, /*gelu=*/true);  // [..., N]
  if (takes_quantized_tokens()) return forward_quantized(quantize_per_token(x), x.scalar_type(), /*gelu=*/true);
  return at::gelu(forward(x), "tanh");  // [..., N]
}

at::Tensor QuantLinearImpl::forward_quantized(const QuantizedActivation& x, at::ScalarType out_dtype, bool gelu) {
  if (fp8_ || activations_ != ActivationMode::DynamicPerToken)
    throw Error(ErrorKind::Usage, "only a dynamic per-token integer layer takes quantized activations");
  if (use_reference_) {
    const at::Tensor y = forward_reference(dequantize(x));  // [..., N] float32
    return (gelu ? at::gelu(y, "tanh") : y).to(out_dtype);
  }
  return integer_linear(x, quantized_weight(), bias_, out_dtype, gelu);  // [..., N]
}

at::Tensor QuantLinearImpl::forward_reference(const at::Tensor& x) {
  if (fp8_) return fp8_linear_reference(x, fp8_weight(), bias_);  // [..., N]
  return at::linear(reference_activations(x), dequantize(quantized_weight()), bias_).to(x.scalar_type());  // [..., N]
}

at::Tensor QuantLinearImpl::reference_activations(const at::Tensor& x) const {
  switch (activations_) {
    case ActivationMode::None:
      require_float(x, "the quantized linear's input");
      return x.to(at::kFloat);
    case ActivationMode::DynamicPerToken:
      return fake_quantize_per_token(x);
    case ActivationMode::StaticPerTensor:
      return static_activations_.fake_quantize(x);
  }
  return {};
}

void QuantLinearImpl::require_static_mode() const {
  if (activations_ != ActivationMode::StaticPerTensor) {
    throw Error(ErrorKind::Usage, "only a static per-tensor quantized linear is calibrated");
  }
}

void QuantLinearImpl::observe(const at::Tensor& x) {
  require_static_mode();
  static_activations_.observe(x);
}

void QuantLinearImpl::start_calibration() {
  require_static_mode();
  calibrating_ = true;
}

void QuantLinearImpl::finish_calibration() {
  require_static_mode();
  static_activations_.finish();
  calibrating_ = false;
}

void QuantLinearImpl::restore_calibration(double scale, int64_t zero_point) {
  require_static_mode();
  static_activations_.restore(scale, zero_point);
}

}  // namespace ditgen::quant
