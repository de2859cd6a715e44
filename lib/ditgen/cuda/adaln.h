// adaLN-Zero's memory-bound steps fused: gated residual + LayerNorm + modulation. Each op has its LibTorch
// reference (`*_reference`), which CPU runs, training (autograd) and unsupported shapes use; on CUDA in
// inference the fused kernel (adaln_kernels.cu) runs instead, computing in fp32 and rounding once.
#pragma once

#include <utility>

#include <ATen/ATen.h>

#include "ditgen/cuda/element_type.h"

namespace ditgen::cuda {

// Whether fused kernels may replace their references (default on; `ditgen bench` times both).
bool fused_kernels_enabled();
void set_fused_kernels_enabled(bool enabled);
// Whether the fused inference path applies to a tensor: enabled, on CUDA, no gradient being recorded, no
// autocast.
bool use_fused_path(const at::Tensor& x);
// use_fused_path in fp16 or bf16 on an Ampere or newer GPU: what the half-precision tensor-core kernels take
// (ours and flash attention's).
bool use_fused_half_path(const at::Tensor& x);
// Whether a tensor's data starts on a 16-byte boundary (the kernels' vector loads).
bool is_16_byte_aligned(const at::Tensor& t);
// The kernels' element type of an fp32, fp16 or bf16 tensor (callers check the dtype first).
ElementType element_type_of(const at::Tensor& x);

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

// x + gate * branch alone (a block's last residual step when no norm follows it in the same op).
// x, branch [B, N, D]; gate [B, D] -> [B, N, D]
at::Tensor gated_residual(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& branch);
at::Tensor gated_residual_reference(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& branch);

// Whether the fused kernel can take these tensors (CUDA, fp32/fp16/bf16, D <= 2048, 16-byte aligned rows).
bool adaln_kernel_supports(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale);

}  // namespace ditgen::cuda
