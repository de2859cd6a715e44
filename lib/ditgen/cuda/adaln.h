// adaLN-Zero's memory-bound steps fused: gated residual + LayerNorm + modulation. Each op has its LibTorch
// reference (`*_reference`), which CPU runs, training (autograd) and unsupported shapes use; on CUDA in
// inference the fused kernel (adaln_kernels.cu) runs instead where cuda/dispatch.h says so, computing in fp32
// and rounding once.
#pragma once

#include <utility>

#include <ATen/ATen.h>

#include "ditgen/quant/quantizer.h"

namespace ditgen::cuda {

// y = LayerNorm(x) * (1 + scale) + shift, LayerNorm without affine (eps 1e-6).
// x [B, N, D]; shift, scale [B, D] (row strides free, e.g. chunks of the adaLN output) -> [B, N, D]
at::Tensor layer_norm_modulate(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale);
at::Tensor layer_norm_modulate_reference(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale);

// x_out = x + gate * branch (the block's residual step), then y = LayerNorm(x_out) * (1 + scale) + shift
// (the next norm). x, branch [B, N, D]; gate, shift, scale [B, D] -> {x_out, y}, both [B, N, D]
std::pair<at::Tensor, at::Tensor> gated_residual_layer_norm_modulate(const at::Tensor& x, const at::Tensor& gate,
                                                                     const at::Tensor& branch, const at::Tensor& shift,
                                                                     const at::Tensor& scale);
std::pair<at::Tensor, at::Tensor> gated_residual_layer_norm_modulate_reference(
    const at::Tensor& x, const at::Tensor& gate, const at::Tensor& branch, const at::Tensor& shift,
    const at::Tensor& scale);

// The two ops above with y quantized per token to int8 in the same kernel (quant::quantize_per_token's grid:
// values, scales and row sums), the input of an integer linear (qkv, fc1) without y's round trip through
// memory. Where the kernel does not run: the float op, then quantize_per_token (their reference).
quant::QuantizedActivation layer_norm_modulate_quantized(const at::Tensor& x, const at::Tensor& shift,
                                                         const at::Tensor& scale);
std::pair<at::Tensor, quant::QuantizedActivation> gated_residual_layer_norm_modulate_quantized(
    const at::Tensor& x, const at::Tensor& gate, const at::Tensor& branch, const at::Tensor& shift,
    const at::Tensor& scale);

// x + gate * branch alone (a block's last residual step when no norm follows it in the same op).
// x, branch [B, N, D]; gate [B, D] -> [B, N, D]
at::Tensor gated_residual(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& branch);
at::Tensor gated_residual_reference(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& branch);

}  // namespace ditgen::cuda
