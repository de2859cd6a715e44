// The fused-kernel dispatch policy, in one place: when a fused path (our CUDA kernels, the GELU epilogue of
// cuBLASLt, variable-length flash attention) replaces its LibTorch reference. The ops keep their references
// beside them, which the CPU, training (autograd), autocast and every shape a kernel does not take run; the
// functions here only decide, and every op asks them.
#pragma once

#include <cstdint>

#include <ATen/ATen.h>

#include "ditgen/cuda/element_type.h"

namespace ditgen::cuda {

// Whether fused kernels may replace their references (default on; `ditgen bench` times both).
bool fused_kernels_enabled();
void set_fused_kernels_enabled(bool enabled);
// Whether CUDA inference runs the bidirectional S4D as the fused scan kernel. Off by default: on the H100 it
// beats the FFT path only at 64k tokens (docs/DIFFUSSM.md; `ditgen bench --ssm-scan`).
bool s4d_scan_kernel_enabled();
void set_s4d_scan_kernel_enabled(bool enabled);

// Whether the fused inference path applies to a tensor: enabled, on CUDA, no gradient being recorded, no
// autocast. DiT's forward_fused and linear_gelu's GELU epilogue need nothing more.
bool use_fused_path(const at::Tensor& x);
// use_fused_path in fp16 or bf16 on an Ampere or newer GPU: what the half-precision tensor-core kernels take
// (ours and flash attention's).
bool use_fused_half_path(const at::Tensor& x);

// adaLN (adaln_kernels.cu): whether the kernel can take these tensors (CUDA, fp32/fp16/bf16, D <= 2048,
// 16-byte aligned rows; shift and scale [B, D] rows with a stride), fused path or not.
bool adaln_kernel_supports(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale);
// layer_norm_modulate runs the kernel: the fused path and a shape it takes.
bool adaln_runs_kernel(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale);
// The gated residual steps run the kernel: as adaln_runs_kernel, and the branch shaped as x with gate as its
// condition.
bool gated_residual_runs_kernel(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& branch,
                                const at::Tensor& shift, const at::Tensor& scale);

// Token-grid resampling (token_grid_kernels.cu) runs the kernel on `tokens` read or written with `other`:
// the fused path, fp32/fp16/bf16 like other's on its device, [B, N, D] contiguous 16-byte aligned rows.
bool token_grid_runs_kernel(const at::Tensor& tokens, const at::Tensor& other);

// The S4D scan kernel (s4d_scan_kernels.cu) can take u [B, L, C] with `modes` complex modes a kernel: CUDA,
// fp32/fp16/bf16, contiguous, not empty, at most 256 modes.
bool s4d_scan_kernel_supports(const at::Tensor& u, int64_t modes);
// The bidirectional S4D runs it: enabled, the fused path and a shape it takes.
bool s4d_scan_runs_kernel(const at::Tensor& u, int64_t modes);

// PT-DiT's window attention runs the fused kernel (window_attention_kernels.cu) on qkv [B, N, 3D]: the fused
// half path, a head size that is a multiple of 8 up to 128, windows of up to 256 tokens whose shared memory
// fits the GPU, 16-byte aligned rows.
bool window_attention_runs_kernel(const at::Tensor& qkv, int64_t heads, int64_t window_tokens);

// Attention over windows split into regions runs them as variable-length flash attention on queries
// [B, H, n, hd]: the fused half path, a head size flash takes (a multiple of 8 up to 256), and flash
// attention not switched off.
bool variable_length_flash_runs(const at::Tensor& q);

// What the kernels are handed: whether a tensor's data starts on a 16-byte boundary (their vector loads),
// and the element type of an fp32, fp16 or bf16 tensor (the predicates above check the dtype first).
bool is_16_byte_aligned(const at::Tensor& t);
ElementType element_type_of(const at::Tensor& x);

}  // namespace ditgen::cuda
