// Uniform affine quantizers: clip ranges, the MSE search, weights per output channel and activations per
// token or per tensor, each with its float fake-quant reference.
#include "ditgen/quant/quantizer.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "ditgen/quant/int8_linear_cpu.h"
#include "ditgen/quant/token_quant.h"

namespace ditgen::quant {

namespace {

constexpr int kClipShrinks = 80;          // candidates 1, 0.99, ..., 0.21 of the range
constexpr double kClipShrinkStep = 0.01;
constexpr double kErrorExponent = 2.4;    // the L_p norm of the IntLoRA code's search

// x [..., K] as rows [M, K].
at::Tensor as_rows(const at::Tensor& x) { return x.reshape({-1, x.size(-1)}); }

}  // namespace

void require_bits(int bits) {
  if (bits != 4 && bits != 8) {
    throw Error(ErrorKind::Usage, "quantization bits must be 4 or 8, not " + std::to_string(bits));
  }
}

void require_float(const at::Tensor& x, const char* what) {
  if (!x.defined() || x.numel() == 0) throw Error(ErrorKind::Usage, std::string(what) + " is empty");
  if (!at::isFloatingType(x.scalar_type())) {
    throw Error(ErrorKind::Usage, std::string(what) + " must be a floating-point tensor, not " +
                                      std::string(c10::toString(x.scalar_type())));
  }
}

void require_finite(const at::Tensor& x, const char* what, ErrorKind kind) {
  if (!at::isfinite(x).all().item<bool>()) throw Error(kind, std::string(what) + " has NaN or infinite values");
}

void require_int8(const at::Tensor& x, const char* what, int64_t dims) {
  if (!x.defined() || x.scalar_type() != at::kChar || x.dim() != dims) {
    throw Error(ErrorKind::Usage, std::string(what) + " must be an int8 tensor of " + std::to_string(dims) +
                                      " dimensions");
  }
}

void require_linear_bias(const at::Tensor& bias, int64_t out_features) {
  if (bias.defined() && (bias.dim() != 1 || bias.size(0) != out_features))
    throw Error(ErrorKind::Usage, "the quantized linear's bias must be [" + std::to_string(out_features) + "]");
}

IntegerGrid integer_grid(int bits, Symmetry symmetry) {
  require_bits(bits);
  const int64_t half = int64_t{1} << (bits - 1);
  if (symmetry == Symmetry::Symmetric) return {-(half - 1), half - 1};
  return {-half, half - 1};
}

at::Tensor round_ste(const at::Tensor& x) { return x.round().detach() + (x - x.detach()); }

AffineParams affine_params(const at::Tensor& lo, const at::Tensor& hi, int bits, Symmetry symmetry) {
  const IntegerGrid grid = integer_grid(bits, symmetry);
  const at::Tensor low = lo.to(at::kFloat).clamp_max(0);   // [R] widened to contain 0
  const at::Tensor high = hi.to(at::kFloat).clamp_min(0);  // [R]
  if (symmetry == Symmetry::Symmetric) {
    const at::Tensor absmax = at::maximum(low.abs(), high);                                  // [R]
    const at::Tensor scales = at::where(absmax > 0, absmax / double(grid.max), at::ones_like(absmax));
    return {scales, at::zeros_like(scales)};
  }
  const at::Tensor range = high - low;                                                        // [R]
  const at::Tensor scales = at::where(range > 0, range / double(grid.max - grid.min), at::ones_like(range));
  // lo maps to grid.min: z = grid.min - round(lo / s), in the grid since lo <= 0 <= hi.
  const at::Tensor zero_points = (double(grid.min) - (low / scales).round()).clamp(grid.min, grid.max);
  return {scales, zero_points};
}

at::Tensor grid_values(const at::Tensor& x, const AffineParams& params, const IntegerGrid& grid) {
  const at::Tensor scales = params.scales.unsqueeze(1);            // [R, 1]
  const at::Tensor zero_points = params.zero_points.unsqueeze(1);  // [R, 1]
  return (round_ste(x / scales) + zero_points).clamp(grid.min, grid.max);  // [R, C]
}

at::Tensor fake_quantize(const at::Tensor& x, const AffineParams& params, const IntegerGrid& grid) {
  return (grid_values(x, params, grid) - params.zero_points.unsqueeze(1)) * params.scales.unsqueeze(1);
}

at::Tensor lp_error(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().pow(kErrorExponent).sum(1); }

AffineParams clip_params(const at::Tensor& x, const QuantSpec& spec, at::Tensor lo, at::Tensor hi) {
  at::NoGradGuard no_grad;
  const at::Tensor rows = x.detach().to(at::kFloat);  // [R, C]
  if (!lo.defined()) lo = std::get<0>(rows.min(1));    // [R]
  if (!hi.defined()) hi = std::get<0>(rows.max(1));    // [R]
  AffineParams best = affine_params(lo, hi, spec.bits, spec.symmetry);
  if (spec.clip == ClipSearch::MinMax) return best;

  const IntegerGrid grid = integer_grid(spec.bits, spec.symmetry);
  at::Tensor best_error = lp_error(rows, fake_quantize(rows, best, grid));  // [R]
  for (int i = 1; i < kClipShrinks; ++i) {
    const double shrink = 1.0 - kClipShrinkStep * i;
    const AffineParams candidate = affine_params(lo * shrink, hi * shrink, spec.bits, spec.symmetry);
    const at::Tensor error = lp_error(rows, fake_quantize(rows, candidate, grid));  // [R]
    const at::Tensor better = error < best_error;                                   // [R], ties keep the wider
    best.scales = at::where(better, candidate.scales, best.scales);
    best.zero_points = at::where(better, candidate.zero_points, best.zero_points);
    best_error = at::where(better, error, best_error);
  }
  return best;
}

namespace {

void require_weight(const at::Tensor& weight, const QuantSpec& spec) {
  require_bits(spec.bits);
  require_float(weight, "the weight to quantize");
  if (weight.dim() != 2) {
    throw Error(ErrorKind::Usage, "the weight to quantize must be [out, in], not " +
                                      std::to_string(weight.dim()) + "-dimensional");
  }
  require_finite(weight, "the weight to quantize", ErrorKind::Model);
}

void require_activation(const at::Tensor& x) {
  require_float(x, "the activation to quantize");
  require_finite(x, "the activation to quantize", ErrorKind::Usage);
}

}  // namespace

QuantizedWeight quantize_weight(const at::Tensor& weight, const QuantSpec& spec) {
  require_weight(weight, spec);
  at::NoGradGuard no_grad;
  const at::Tensor rows = weight.to(at::kFloat);  // [out, in]
  const AffineParams params = clip_params(rows, spec);
  QuantizedWeight out;
  out.values = grid_values(rows, params, integer_grid(spec.bits, spec.symmetry)).to(at::kChar);  // [out, in]
  out.scales = params.scales.contiguous();                                                       // [out]
  out.zero_points = params.zero_points.to(at::kInt);                                             // [out]
  out.bits = spec.bits;
  out.symmetry = spec.symmetry;
  return out;
}

at::Tensor dequantize(const QuantizedWeight& weight) {
  const at::Tensor centred = weight.values.to(at::kFloat) - weight.zero_points.to(at::kFloat).unsqueeze(1);
  return centred * weight.scales.unsqueeze(1);  // [out, in]
}

at::Tensor fake_quantize_weight(const at::Tensor& weight, const QuantSpec& spec) {
  require_weight(weight, spec);
  const AffineParams params = clip_params(weight, spec);
  return fake_quantize(weight.to(at::kFloat), params, integer_grid(spec.bits, spec.symmetry));  // [out, in]
}

namespace {

// Per-token absmax parameters of rows [M, K] (symmetric 8 bits). The check for NaN and infinity reads the
// row maxima, which carry any (a NaN or inf in a row makes its absmax one), not the whole input again; on a
// GPU it is left out, since reading them back would stall every layer (a NaN then reaches the output).
AffineParams per_token_params(const at::Tensor& rows) {
  at::NoGradGuard no_grad;
  const at::Tensor absmax = rows.detach().abs().amax(1);  // [M]
  if (absmax.is_cpu()) require_finite(absmax, "the activation to quantize", ErrorKind::Usage);
  return affine_params(-absmax, absmax, 8, Symmetry::Symmetric);
}

const IntegerGrid kPerTokenGrid = integer_grid(8, Symmetry::Symmetric);

}  // namespace

QuantizedActivation quantize_per_token(const at::Tensor& x) {
  require_float(x, "the activation to quantize");
  if (token_quant_runs_kernel(x)) return quantize_per_token_kernel(x);
  if (x.is_cpu()) return quantize_per_token_cpu(x.to(at::kFloat));
  return quantize_per_token_reference(x);
}

QuantizedActivation quantize_per_token_reference(const at::Tensor& x) {
  require_float(x, "the activation to quantize");
  at::NoGradGuard no_grad;
  const at::Tensor rows = as_rows(x.to(at::kFloat));  // [M, K]
  const AffineParams params = per_token_params(rows);
  QuantizedActivation out;
  // grid_values' arithmetic in one pass less each: no straight-through terms (no gradient here), no zero point.
  out.values = rows.div(params.scales.unsqueeze(1)).round_().clamp_(kPerTokenGrid.min, kPerTokenGrid.max)
                   .to(at::kChar).reshape(x.sizes());  // [..., K]
  out.scales = params.scales.reshape(x.sizes().slice(0, x.dim() - 1));                     // [...]
  return out;
}

at::Tensor fake_quantize_per_token(const at::Tensor& x) {
  require_float(x, "the activation to quantize");
  const at::Tensor rows = as_rows(x.to(at::kFloat));  // [M, K]
  return fake_quantize(rows, per_token_params(rows), kPerTokenGrid).reshape(x.sizes());
}

at::Tensor token_sums(const QuantizedActivation& x) {
  return x.sums.defined() ? x.sums.reshape({-1}) : x.values.reshape({-1, x.values.size(-1)}).sum(1, false, at::kInt);
}

at::Tensor dequantize(const QuantizedActivation& x) {
  return (x.values.to(at::kFloat) - double(x.zero_point)) * x.scales.unsqueeze(-1);  // [..., K]
}

StaticActivationQuantizer::StaticActivationQuantizer(const QuantSpec& spec) : spec_(spec) { require_bits(spec.bits); }

void StaticActivationQuantizer::observe(const at::Tensor& x) {
  require_activation(x);
  at::NoGradGuard no_grad;
  const at::Tensor flat = x.detach().to(at::kFloat).flatten();  // [n]
  const int64_t stride = std::max<int64_t>(1, (flat.numel() + kSamplesPerBatch - 1) / kSamplesPerBatch);
  samples_.push_back(flat.slice(0, 0, flat.numel(), stride).to(at::kCPU, /*non_blocking=*/false, /*copy=*/true));  // [<= kSamplesPerBatch]
  const double batch_min = flat.min().item<double>();
  const double batch_max = flat.max().item<double>();
  observed_min_ = observed_ ? std::min(observed_min_, batch_min) : batch_min;
  observed_max_ = observed_ ? std::max(observed_max_, batch_max) : batch_max;
  observed_ = true;
  calibrated_ = false;
}

void StaticActivationQuantizer::finish() {
  if (!observed_) throw Error(ErrorKind::Usage, "the static activation quantizer has observed no batch");
  const at::Tensor samples = at::cat(samples_).unsqueeze(0);  // [1, S]
  const AffineParams best = clip_params(samples, spec_, at::full({1}, observed_min_), at::full({1}, observed_max_));
  scale_ = best.scales.item<double>();
  zero_point_ = best.zero_points.item<int64_t>();
  calibrated_ = true;
}

void StaticActivationQuantizer::restore(double scale, int64_t zero_point) {
  const IntegerGrid grid = integer_grid(spec_.bits, spec_.symmetry);
  if (!std::isfinite(scale) || !(scale > 0))
    throw Error(ErrorKind::Model, "a static activation scale must be finite and > 0");
  if (zero_point < grid.min || zero_point > grid.max || (spec_.symmetry == Symmetry::Symmetric && zero_point != 0))
    throw Error(ErrorKind::Model, "a static activation zero point is off its grid");
  scale_ = scale;
  zero_point_ = zero_point;
  calibrated_ = true;
}

void StaticActivationQuantizer::require_calibrated() const {
  if (!calibrated_) {
    throw Error(ErrorKind::Usage, "the static activation quantizer is used before its calibration finished");
  }
}

AffineParams StaticActivationQuantizer::params(const at::Device& device) const {
  // Filled on the device, not copied there: a host-to-device copy cannot be captured in a CUDA graph.
  const at::TensorOptions options = at::TensorOptions(device).dtype(at::kFloat);
  return {at::full({1}, scale_, options), at::full({1}, double(zero_point_), options)};
}

QuantizedActivation StaticActivationQuantizer::quantize(const at::Tensor& x) const {
  require_calibrated();
  require_float(x, "the activation to quantize");
  // On a GPU the check would read a value back in every layer (and cannot run inside a CUDA graph).
  if (x.is_cpu()) require_finite(x, "the activation to quantize", ErrorKind::Usage);
  at::NoGradGuard no_grad;
  const at::Tensor flat = x.to(at::kFloat).reshape({1, -1});  // [1, n]
  QuantizedActivation out;
  out.values = grid_values(flat, params(x.device()), integer_grid(spec_.bits, spec_.symmetry))
                   .to(at::kChar)
                   .reshape(x.sizes());  // [..., K]
  out.scales = at::full(x.sizes().slice(0, x.dim() - 1), scale_, x.options().dtype(at::kFloat));  // [...]
  out.zero_point = zero_point_;
  return out;
}

at::Tensor StaticActivationQuantizer::fake_quantize(const at::Tensor& x) const {
  require_calibrated();
  require_activation(x);
  const at::Tensor flat = x.to(at::kFloat).reshape({1, -1});  // [1, n]
  return quant::fake_quantize(flat, params(x.device()), integer_grid(spec_.bits, spec_.symmetry)).reshape(x.sizes());
}

}  // namespace ditgen::quant
