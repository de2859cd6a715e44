// A linear layer with per-output-channel quantized weights (4 or 8 bits, held as int8) and a choice of
// activation quantization; forward runs the integer GEMM (CPU or CUDA), forward_reference the float fake-quant.
// Or, built from an Fp8Weight, the FP8 linear (fp8_linear.h), the speed reference: e4m3 weights and tokens.
//
// Memory: the weight is held unpacked, one int8 per value, at every bit width, so a 4-bit layer loaded from
// packed storage (int4_pack.h) costs twice its packed size: out x in bytes instead of out x in / 2, plus
// 8 bytes per output channel for the scale and zero point (a quarter of the fp32 weight at 8 bits).
#pragma once

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>

#include "ditgen/quant/fp8_linear.h"
#include "ditgen/quant/quantizer.h"

namespace ditgen::quant {

enum class ActivationMode {
  None,             // weight-only: float activations times the dequantized weight
  DynamicPerToken,  // symmetric int8, one scale per token, computed on every forward
  StaticPerTensor,  // one scale and zero point, calibrated with observe() ... finish_calibration()
};

class QuantLinearImpl : public torch::nn::Module {
 public:
  // Quantizes a float weight [out, in] (bias [out] or undefined) with `weight_spec`.
  QuantLinearImpl(const at::Tensor& weight, const at::Tensor& bias, const QuantSpec& weight_spec,
                  ActivationMode activations, const QuantSpec& activation_spec = {8, Symmetry::Asymmetric});
  QuantLinearImpl(const torch::nn::Linear& linear, const QuantSpec& weight_spec, ActivationMode activations,
                  const QuantSpec& activation_spec = {8, Symmetry::Asymmetric});
  // An already quantized weight, e.g. unpack_int4 of a stored 4-bit one.
  QuantLinearImpl(const QuantizedWeight& weight, const at::Tensor& bias, ActivationMode activations,
                  const QuantSpec& activation_spec = {8, Symmetry::Asymmetric});

  // An FP8 layer: e4m3 weights with per-channel scales, e4m3 tokens (fp8_linear.h).
  QuantLinearImpl(const Fp8Weight& weight, const at::Tensor& bias);

  // Outputs in x's dtype; the arithmetic is float32 or integer whatever that dtype (the bias stays float32).
  at::Tensor forward(const at::Tensor& x);            // [..., K] -> [..., N], integer GEMM (CPU or CUDA)
  at::Tensor forward_reference(const at::Tensor& x);  // [..., K] -> [..., N], float fake-quant
  // GELU (tanh form) of forward: in the GEMM's epilogue for a dynamic integer layer (integer_linear's gelu) and
  // for an FP8 layer on an H100, else after it.
  at::Tensor forward_gelu(const at::Tensor& x);       // [..., K] -> [..., N]
  // Activations already quantized per token (the fused adaLN kernel's output): the integer GEMM alone, the
  // result in out_dtype. Error(Usage) unless the layer has dynamic per-token activations.
  // gelu: GELU (tanh form) of the result, in the GEMM's epilogue where the Hopper kernel runs.
  at::Tensor forward_quantized(const QuantizedActivation& x, at::ScalarType out_dtype, bool gelu = false);
  // Whether forward_quantized is this layer's own arithmetic: integer, dynamic per token, not
  // switched to its reference.
  bool takes_quantized_tokens() const {
    return !fp8_ && activations_ == ActivationMode::DynamicPerToken && !use_reference_;
  }
  // Makes forward() run forward_reference, so a whole model's integer path can be checked against its float
  // twin layer by layer.
  void use_reference(bool on) { use_reference_ = on; }

  // Static per-tensor calibration: observe batches of this layer's inputs, then finish (see
  // StaticActivationQuantizer for the rule). Usage error in the other modes. Between start_calibration() and
  // finish_calibration() forward() observes its input and computes with float activations (the weights
  // quantized), so a whole model calibrates by running it.
  void observe(const at::Tensor& x);
  void start_calibration();
  void finish_calibration();
  bool calibrating() const { return calibrating_; }
  // A calibration made before (a model file's scale and zero point).
  void restore_calibration(double scale, int64_t zero_point);

  // Module::to converts every buffer, the integer ones too: here the device changes and the dtypes stay.
  // A floating dtype only sets what the caller feeds in (outputs follow the input); others are refused (Usage).
  void to(torch::Device device, torch::Dtype dtype, bool non_blocking = false) override;
  void to(torch::Dtype dtype, bool non_blocking = false) override;
  void to(torch::Device device, bool non_blocking = false) override;

  // Error(Usage) for an FP8 layer.
  QuantizedWeight quantized_weight() const;
  bool is_fp8() const { return fp8_; }
  const at::Tensor& weight_values() const { return weight_values_; }  // int8 (or e4m3) [out, in]
  Fp8Weight fp8_weight() const { return {weight_values_, weight_scales_}; }
  const at::Tensor& bias() const { return bias_; }  // float32 [out] or undefined
  ActivationMode activation_mode() const { return activations_; }
  const StaticActivationQuantizer& static_activations() const { return static_activations_; }

 private:
  void require_static_mode() const;
  at::Tensor reference_activations(const at::Tensor& x) const;  // [..., K] float, fake-quantized per the mode

  at::Tensor weight_values_;       // int8 [out, in] (float8_e4m3fn for FP8)
  at::Tensor weight_scales_;       // float32 [out]
  at::Tensor weight_zero_points_;  // int32 [out]
  at::Tensor bias_;                // float32 [out] or undefined
  int weight_bits_ = 8;
  Symmetry weight_symmetry_ = Symmetry::Asymmetric;
  ActivationMode activations_ = ActivationMode::DynamicPerToken;
  bool use_reference_ = false;
  bool fp8_ = false;
  bool calibrating_ = false;
  StaticActivationQuantizer static_activations_;
};
TORCH_MODULE(QuantLinear);

}  // namespace ditgen::quant
