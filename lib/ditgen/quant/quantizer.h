// Uniform affine quantizers (the IntLoRA paper's, arXiv 2410.21759; docs/QUANT.md): per-output-channel
// weights with an optional MSE clip search, dynamic per-token and static per-tensor activations, and their
// float fake-quant references.
//
// Integer layout (every bit width, stored in int8 so that one integer GEMM serves 4 and 8 bits):
//   asymmetric: q in [-2^(b-1), 2^(b-1)-1]  (8 bits -128..127, 4 bits -8..7), zero point z in the same range;
//               this is the paper's unsigned grid [0, 2^b-1] shifted down by 2^(b-1), so x ~ s (q - z) holds.
//   symmetric:  q in [-(2^(b-1)-1), 2^(b-1)-1] (8 bits -127..127, 4 bits -7..7), z = 0; the grid is kept
//               symmetric so that -x quantizes to -q.
// Scales are float32, zero points int32; a weight has one of each per output channel (row of [out, in]).
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/ATen.h>

#include "ditgen/core/error.h"

namespace ditgen::quant {

enum class Symmetry { Symmetric, Asymmetric };

// How the clip range [lo, hi] is chosen: the plain observed min/max, or the shrink (1 - 0.01 i, i < 80) of
// it with the lowest L_2.4 quantization error (the IntLoRA code's search; outliers get clipped).
enum class ClipSearch { MinMax, Mse };

struct QuantSpec {
  int bits = 8;  // 4 or 8
  Symmetry symmetry = Symmetry::Asymmetric;
  ClipSearch clip = ClipSearch::Mse;
};

// The integer range of one bit width and symmetry (see the layout above).
struct IntegerGrid {
  int64_t min = 0;
  int64_t max = 0;
};
IntegerGrid integer_grid(int bits, Symmetry symmetry);

// A weight quantized per output channel: x[o, i] ~ scales[o] * (values[o, i] - zero_points[o]).
struct QuantizedWeight {
  at::Tensor values;       // int8 [out, in]
  at::Tensor scales;       // float32 [out], > 0
  at::Tensor zero_points;  // int32 [out]; 0 when symmetric
  int bits = 8;
  Symmetry symmetry = Symmetry::Asymmetric;
};

// Activations in integers: x[..., k] ~ scales[...] * (values[..., k] - zero_point).
struct QuantizedActivation {
  at::Tensor values;       // int8 [..., K]
  at::Tensor scales;       // float32 [...] (one per token; all equal for a per-tensor quantizer)
  int64_t zero_point = 0;  // per tensor; 0 when symmetric
  at::Tensor sums;         // int32 [...] each token's sum of values where the quantizer made it (CUDA), or undefined
};

// Forward round, backward identity (straight-through estimator); the forward value is exactly round(x).
at::Tensor round_ste(const at::Tensor& x);

// Per-row scale and (integer-valued) zero point of the clip ranges [lo, hi] on `grid`. The range is widened
// to contain 0 so that 0 is exact; an all-zero range gets scale 1.
struct AffineParams {
  at::Tensor scales;       // float32 [R]
  at::Tensor zero_points;  // float32 [R], integer-valued
};
AffineParams affine_params(const at::Tensor& lo, const at::Tensor& hi, int bits, Symmetry symmetry);

// Integer-valued float grid values clamp(round_ste(x / s) + z) for per-row params broadcast over x [R, C].
at::Tensor grid_values(const at::Tensor& x, const AffineParams& params, const IntegerGrid& grid);  // [R, C]
// Quantize-dequantize in float, differentiable through round_ste (zero gradient where clamped).
at::Tensor fake_quantize(const at::Tensor& x, const AffineParams& params, const IntegerGrid& grid);  // [R, C]

// The sum over each row of |a - b|^2.4, the error the MSE search minimizes.
at::Tensor lp_error(const at::Tensor& a, const at::Tensor& b);  // [R, C], [R, C] -> [R]

// Per-row clip ranges of x [R, C] for `spec`: min/max of each row, then the MSE search if asked. `lo`/`hi`
// given (not undefined) replace the rows' own min/max as the range the search shrinks.
AffineParams clip_params(const at::Tensor& x, const QuantSpec& spec, at::Tensor lo = {}, at::Tensor hi = {});

// Weights: validated (Usage for bad bits, shape or dtype; Model for non-finite values), then per row.
QuantizedWeight quantize_weight(const at::Tensor& weight, const QuantSpec& spec);  // weight [out, in]
at::Tensor dequantize(const QuantizedWeight& weight);                              // -> float32 [out, in]
// The float reference of quantize_weight: same parameters, values kept in float, gradient through round_ste.
at::Tensor fake_quantize_weight(const at::Tensor& weight, const QuantSpec& spec);  // [out, in]

// Dynamic per-token activations: symmetric 8-bit, each row of x [..., K] scaled by its own absmax / 127
// (no search: it runs on every forward). On CUDA the token_quant kernel (quant/token_quant.h), on the CPU one
// loop over the rows (quant/int8_linear_cpu.h); both also give each row's sum. Error(Usage) for NaN or infinite
// values (checked on the CPU only).
QuantizedActivation quantize_per_token(const at::Tensor& x);
// Its reference in LibTorch ops (values and scales; no sums), which the kernel and the loop equal bit for bit.
QuantizedActivation quantize_per_token_reference(const at::Tensor& x);
at::Tensor fake_quantize_per_token(const at::Tensor& x);  // [..., K]
// Float activations of a quantized one: scales * (values - zero_point).
at::Tensor dequantize(const QuantizedActivation& x);  // [..., K]
// Each token's sum of values, int32 [M] over the tokens in order: the quantizer's where it gave them, else summed.
at::Tensor token_sums(const QuantizedActivation& x);

// Static per-tensor activations, calibrated on many batches. Rule: observe() keeps the running min and max
// of everything seen plus an evenly strided sample of at most kSamplesPerBatch values of each batch;
// finish() then takes [running min, running max] as the range and (ClipSearch::Mse) searches its shrinks
// for the lowest L_2.4 error on the kept samples. Quantizing before finish() is a usage error.
class StaticActivationQuantizer {
 public:
  static constexpr int64_t kSamplesPerBatch = 16384;

  explicit StaticActivationQuantizer(const QuantSpec& spec = {});
  void observe(const at::Tensor& x);  // [...], float, finite
  void finish();
  // A calibration made earlier (a model file's): Error(Model) for a scale that is not finite and > 0 or a
  // zero point off the spec's grid.
  void restore(double scale, int64_t zero_point);
  bool calibrated() const { return calibrated_; }

  double observed_min() const { return observed_min_; }
  double observed_max() const { return observed_max_; }
  double scale() const { return scale_; }
  int64_t zero_point() const { return zero_point_; }
  const QuantSpec& spec() const { return spec_; }

  QuantizedActivation quantize(const at::Tensor& x) const;  // [..., K]
  at::Tensor fake_quantize(const at::Tensor& x) const;      // [..., K]

 private:
  AffineParams params(const at::Device& device) const;  // [1] each
  void require_calibrated() const;

  QuantSpec spec_;
  std::vector<at::Tensor> samples_;  // [<= kSamplesPerBatch] each
  double observed_min_ = 0;
  double observed_max_ = 0;
  bool observed_ = false;
  bool calibrated_ = false;
  double scale_ = 1;
  int64_t zero_point_ = 0;
};

// Input checks shared by the quant files; each throws ditgen::Error with one line naming `what`.
void require_bits(int bits);                                     // Usage unless 4 or 8
void require_float(const at::Tensor& x, const char* what);       // Usage: undefined, empty or not floating
void require_finite(const at::Tensor& x, const char* what, ErrorKind kind);  // `kind` on NaN or inf
void require_int8(const at::Tensor& x, const char* what, int64_t dims);      // Usage: not int8 of `dims` dims
void require_linear_bias(const at::Tensor& bias, int64_t out_features);      // Usage: defined and not [out]

}  // namespace ditgen::quant
