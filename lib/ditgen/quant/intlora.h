// IntLoRA (Guo et al., arXiv 2410.21759): a low-rank adapter trained on a quantized linear layer that merges
// into the layer's integers, so an adapted model stays an integer model (docs/INTLORA.md).
//
//   AQS  The float weight is quantized as W - R for a fixed auxiliary matrix R, so W ~ s (W_q - z) + R and the
//        adapted weight is s W_int + R + c B A, with W_int = W_q - z and c = alpha / rank. R + c B A is never
//        all zero, so it always has a usable quantization scale.
//   VMC  R is Laplace(0, 0.5) drawn from a seed, each row scaled by (absmax W_row / minabs R_row)^1.5, where
//        minabs R_row = min(|max R_row|, |min R_row|) (the official code's max-ratio rule). The seed and the
//        row factors regenerate R, so R costs 4 bytes a row.
//   MLA  The adapted weight as an elementwise product with the integers: W' = U (.) W_int with
//        U = s + (R + c B A) / W_int, where entries with W_int = 0 divide by 1 (there W' = 0 and R + c B A is
//        lost: the paper's behaviour).
//   MUL  U quantized per row (the weight's bits, asymmetric, L_2.4 clip search, parameters fixed where training
//        starts, lora_B = 0): W' = s_u (U_q - z_u) (.) W_int.
//   SHIFT U rounded to a signed power of two: W' = sign(U) 2^round(log2 |U|) (.) W_int.
//
// Training computes W' in float with straight-through rounding; only lora_A and lora_B learn. merge() turns the
// layer into a QuantLinear whose int8 weight is the integer product (see merge()).
#pragma once

#include <cstdint>

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include "ditgen/quant/quant_linear.h"
#include "ditgen/quant/quantizer.h"

namespace ditgen::quant {

enum class IntLoRAKind { Mul, Shift };

struct IntLoRASpec {
  IntLoRAKind kind = IntLoRAKind::Mul;
  int rank = 4;
  double alpha = 4.0;  // the low-rank path is scaled by alpha / rank
  QuantSpec weight{8, Symmetry::Asymmetric, ClipSearch::Mse};
  ActivationMode activations = ActivationMode::DynamicPerToken;  // None or DynamicPerToken
  uint64_t seed = 0;  // draws R (VMC) and lora_A
};

// VMC's auxiliary matrix: Laplace(0, 0.5) of [out, in] drawn on the CPU from `seed` (inverse CDF of a uniform
// draw), float32. Scaled by vmc_row_factors it is R.
at::Tensor laplace_matrix(int64_t out_features, int64_t in_features, uint64_t seed);  // [out, in]
// (absmax W_row / minabs L_row)^1.5 for the float weight [out, in] and the Laplace draw [out, in]; rows of an
// all-zero weight get 0.
at::Tensor vmc_row_factors(const at::Tensor& weight, const at::Tensor& laplace);  // [out]

// How far merge()'s int8 weight is from the adapted weight W' it stands for.
struct MergeError {
  int64_t requantized_rows = 0;  // rows whose integer product did not fit int8
  double max_abs = 0;            // max |W'_merged - W'|
  double relative = 0;           // ||W'_merged - W'||_F / ||W'||_F
  double norm = 0;               // ||W'||_F, so errors of several layers combine by their sizes
};

class IntLoRALinearImpl : public torch::nn::Module {
 public:
  // Quantizes W - R of the float weight [out, in] (bias [out] or undefined) and attaches lora_A [rank, in]
  // (Kaiming-uniform, drawn from seed + 1) and lora_B [out, rank] (zeros). Usage errors: rank < 1, bits not 4
  // or 8, static activations, a weight that is not float [out, in]; Model: non-finite weights.
  IntLoRALinearImpl(const at::Tensor& weight, const at::Tensor& bias, const IntLoRASpec& spec);

  // y = act(x) W'^T + b, float32, differentiable in lora_A and lora_B.
  at::Tensor forward(const at::Tensor& x);  // [..., in] -> [..., out]

  at::Tensor auxiliary() const;        // R, float32 [out, in]
  at::Tensor integer_weight() const;   // W_int = W_q - z, float32 [out, in] (integer-valued)
  at::Tensor adapted_weight() const;   // W', float32 [out, in], as forward uses it
  // The merged layer: an int8 QuantLinear (symmetric, 8 bits, one float scale a row) with this layer's bias and
  // activation mode. Its integers are the product P: MUL P = (U_q - z_u) (.) W_int with row scale s_u, exact
  // integers of |P| <= (2^b - 1)^2; SHIFT P = sign(U) W_int 2^(k - k_min) with row scale 2^k_min,
  // k = round(log2 |U|) and k_min the row's smallest k no more than 24 below its largest. A row whose |P| fits
  // int8 keeps P exactly; any other is requantized: round(P * 127 / max |P|), scale s * max |P| / 127. No float
  // copy of the weight is made beyond the [out, in] product being rounded.
  QuantLinear merge(MergeError* error = nullptr);

  const IntLoRASpec& spec() const { return spec_; }
  const QuantizedWeight& base() const { return base_; }  // W - R quantized
  const at::Tensor& row_factors() const { return row_factors_; }

  at::Tensor lora_A;  // [rank, in]
  at::Tensor lora_B;  // [out, rank]

 private:
  at::Tensor multiplier() const;  // U, float32 [out, in], differentiable in lora_A and lora_B
  at::Tensor adapted_weight(const at::Tensor& u, const at::Tensor& w_int) const;  // W' from U and W_int
  at::Tensor multiplier_integers(const at::Tensor& u) const;  // MUL: U_q - z_u, float32 [out, in]
  at::Tensor activations(const at::Tensor& x) const;

  IntLoRASpec spec_;
  QuantizedWeight base_;    // registered buffers: base_values int8, base_scales f32, base_zero_points i32
  at::Tensor row_factors_;  // f32 [out]: R = row_factors * laplace_matrix(seed)
  at::Tensor auxiliary_;    // R f32 [out, in] (buffer; regenerable from seed and row_factors)
  at::Tensor bias_;         // f32 [out] or undefined
  AffineParams adapter_params_;  // MUL: U's per-row scale and zero point (buffers); SHIFT: ones and zeros
};
TORCH_MODULE(IntLoRALinear);

}  // namespace ditgen::quant
