// IntLoRA's linear layer: AQS + VMC at construction, MLA with MUL or SHIFT in the forward, the integer merge.
#include "ditgen/quant/intlora.h"

#include <cmath>
#include <string>

#include <ATen/CPUGeneratorImpl.h>

namespace ditgen::quant {

namespace {

constexpr double kLaplaceScale = 0.5;
constexpr double kVmcExponent = 1.5;
// SHIFT: |U| below this counts as zero (log2 of it would be -inf); a merged row spans at most this many
// powers of two below its largest.
constexpr double kSmallestMultiplier = 1e-30;
constexpr int kShiftSpan = 24;
constexpr int kInt8Max = 127;

void require_spec(const IntLoRASpec& spec) {
  require_bits(spec.weight.bits);
  if (spec.rank < 1) throw Error(ErrorKind::Usage, "IntLoRA rank must be at least 1, got " + std::to_string(spec.rank));
  if (!(spec.alpha > 0) || !std::isfinite(spec.alpha))
    throw Error(ErrorKind::Usage, "IntLoRA alpha must be a positive number");
  if (spec.activations == ActivationMode::StaticPerTensor)
    throw Error(ErrorKind::Usage, "IntLoRA layers take dynamic per-token or float activations, not static ones");
}

// The U quantizer of MUL: the weight's bits, asymmetric, with the clip search (the official code's choice).
QuantSpec multiplier_spec(const IntLoRASpec& spec) { return {spec.weight.bits, Symmetry::Asymmetric, ClipSearch::Mse}; }

at::Tensor shift_exponents(const at::Tensor& multiplier) {  // k = round_ste(log2 |U|), [out, in]
  return round_ste(at::log2(multiplier.abs().clamp_min(kSmallestMultiplier)));
}

}  // namespace

at::Tensor laplace_matrix(int64_t out_features, int64_t in_features, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  // Inverse CDF: u ~ U(-1/2, 1/2), L = -b sign(u) log(1 - 2|u|); |u| kept below 1/2 so the log stays finite.
  const at::Tensor u = at::empty({out_features, in_features}, at::kDouble).uniform_(-0.5, 0.5, gen);
  const at::Tensor magnitude = (1.0 - 2.0 * u.abs()).clamp_min(1e-12);
  return (-kLaplaceScale * u.sign() * at::log(magnitude)).to(at::kFloat);  // [out, in]
}

at::Tensor vmc_row_factors(const at::Tensor& weight, const at::Tensor& laplace) {
  const at::Tensor w = weight.detach().to(at::kFloat);                        // [out, in]
  const at::Tensor weight_absmax = w.abs().amax(1);                           // [out]
  const at::Tensor laplace_minabs = at::minimum(laplace.amax(1).abs(), laplace.amin(1).abs());  // [out]
  const at::Tensor ratio = weight_absmax / laplace_minabs.clamp_min(1e-12);  // [out]
  return ratio.pow(kVmcExponent);                                             // [out]; 0 for an all-zero row
}

IntLoRALinearImpl::IntLoRALinearImpl(const at::Tensor& weight, const at::Tensor& bias, const IntLoRASpec& spec)
    : spec_(spec) {
  require_spec(spec);
  require_float(weight, "the weight IntLoRA adapts");
  if (weight.dim() != 2) throw Error(ErrorKind::Usage, "the weight IntLoRA adapts must be [out, in]");
  require_finite(weight, "the weight IntLoRA adapts", ErrorKind::Model);
  if (bias.defined()) require_float(bias, "the IntLoRA layer's bias");
  require_linear_bias(bias, weight.size(0));
  at::NoGradGuard no_grad;
  const int64_t out_features = weight.size(0);
  const int64_t in_features = weight.size(1);
  const at::Tensor w = weight.to(at::kFloat).cpu();                            // [out, in]
  const at::Tensor laplace = laplace_matrix(out_features, in_features, spec.seed);  // [out, in]
  row_factors_ = register_buffer("row_factors", vmc_row_factors(w, laplace));      // [out]
  auxiliary_ = register_buffer("auxiliary", row_factors_.unsqueeze(1) * laplace);  // R [out, in]
  const QuantizedWeight base = quantize_weight(w - auxiliary_, spec.weight);
  base_ = base;
  base_.values = register_buffer("base_values", base.values);
  base_.scales = register_buffer("base_scales", base.scales);
  base_.zero_points = register_buffer("base_zero_points", base.zero_points);
  if (bias.defined()) bias_ = register_buffer("bias", bias.detach().to(at::kFloat).cpu().clone());
  // lora_A as nn.Linear initialises a weight (Kaiming-uniform, a = sqrt(5): U(-1/sqrt(in), 1/sqrt(in))).
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(spec.seed + 1);
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
  lora_A = register_parameter("lora_A", at::empty({spec.rank, in_features}, at::kFloat).uniform_(-bound, bound, gen));
  lora_B = register_parameter("lora_B", at::zeros({out_features, spec.rank}, at::kFloat));
  // MUL fixes U's quantizer where training starts: lora_B = 0, so U = s + R / W_int (the paper's first forward).
  AffineParams adapter = spec.kind == IntLoRAKind::Mul ? clip_params(multiplier(), multiplier_spec(spec))
                                                      : AffineParams{at::ones({out_features}), at::zeros({out_features})};
  adapter_params_.scales = register_buffer("adapter_scales", adapter.scales);
  adapter_params_.zero_points = register_buffer("adapter_zero_points", adapter.zero_points);
}

at::Tensor IntLoRALinearImpl::auxiliary() const { return auxiliary_; }

at::Tensor IntLoRALinearImpl::integer_weight() const {
  return base_.values.to(at::kFloat) - base_.zero_points.to(at::kFloat).unsqueeze(1);  // [out, in]
}

at::Tensor IntLoRALinearImpl::multiplier() const {
  const at::Tensor w_int = integer_weight();                                            // [out, in]
  const at::Tensor divisor = at::where(w_int == 0, at::ones_like(w_int), w_int);        // [out, in]
  const at::Tensor low_rank = at::matmul(lora_B, lora_A) * (spec_.alpha / spec_.rank);  // [out, in]
  return base_.scales.unsqueeze(1) + (auxiliary_ + low_rank) / divisor;                 // U [out, in]
}

at::Tensor IntLoRALinearImpl::adapted_weight() const { return adapted_weight(multiplier(), integer_weight()); }

at::Tensor IntLoRALinearImpl::adapted_weight(const at::Tensor& u, const at::Tensor& w_int) const {
  if (spec_.kind == IntLoRAKind::Shift) return u.sign() * at::exp2(shift_exponents(u)) * w_int;  // [out, in]
  return adapter_params_.scales.unsqueeze(1) * multiplier_integers(u) * w_int;                    // [out, in]
}

at::Tensor IntLoRALinearImpl::multiplier_integers(const at::Tensor& u) const {
  return grid_values(u, adapter_params_, integer_grid(spec_.weight.bits, Symmetry::Asymmetric)) -
         adapter_params_.zero_points.unsqueeze(1);  // U_q - z_u [out, in]
}

at::Tensor IntLoRALinearImpl::activations(const at::Tensor& x) const {
  if (spec_.activations == ActivationMode::None) {
    require_float(x, "the IntLoRA layer's input");
    return x.to(at::kFloat);
  }
  return fake_quantize_per_token(x);
}

at::Tensor IntLoRALinearImpl::forward(const at::Tensor& x) {
  return at::linear(activations(x), adapted_weight(), bias_);  // [..., out]
}

QuantLinear IntLoRALinearImpl::merge(MergeError* error) {
  at::NoGradGuard no_grad;
  const at::Tensor u = multiplier();                                      // [out, in]
  const at::Tensor w_int_float = integer_weight();                        // [out, in]
  const at::Tensor exact = adapted_weight(u, w_int_float).to(at::kDouble);  // W' [out, in]
  const at::Tensor w_int = w_int_float.to(at::kDouble);
  at::Tensor product;    // P [out, in], double
  at::Tensor row_scale;  // [out], double
  if (spec_.kind == IntLoRAKind::Mul) {
    product = multiplier_integers(u).to(at::kDouble) * w_int;
    row_scale = adapter_params_.scales.to(at::kDouble);
  } else {
    const at::Tensor k = shift_exponents(u).to(at::kDouble);                          // [out, in]
    const at::Tensor k_max = k.amax(1);                                                // [out]
    const at::Tensor k_min = at::maximum(k.amin(1), k_max - kShiftSpan);               // [out]
    product = u.sign().to(at::kDouble) * w_int * at::exp2(k - k_min.unsqueeze(1));     // [out, in]
    row_scale = at::exp2(k_min);
  }
  const at::Tensor absmax = product.abs().amax(1);  // [out]
  const at::Tensor requantize = absmax > kInt8Max;  // [out]
  const at::Tensor factor = at::where(requantize, kInt8Max / absmax, at::ones_like(absmax));  // [out]
  const at::Tensor values = (product * factor.unsqueeze(1)).round();                          // [out, in], |.| <= 127
  const at::Tensor scales = row_scale / factor;                                               // [out]
  if (error) {
    const at::Tensor diff = values * scales.unsqueeze(1) - exact;
    error->requantized_rows = requantize.sum().item<int64_t>();
    error->max_abs = diff.abs().max().item<double>();
    error->norm = exact.norm().item<double>();
    error->relative = error->norm > 0 ? diff.norm().item<double>() / error->norm : 0.0;
  }
  QuantizedWeight merged;
  merged.values = values.to(at::kChar);
  merged.scales = scales.to(at::kFloat);
  merged.zero_points = at::zeros({values.size(0)}, at::TensorOptions(at::kInt).device(values.device()));
  merged.bits = 8;
  merged.symmetry = Symmetry::Symmetric;
  return QuantLinear(merged, bias_, spec_.activations);
}

}  // namespace ditgen::quant
