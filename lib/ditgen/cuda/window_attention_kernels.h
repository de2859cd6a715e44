// Raw launcher of the fused window attention (window_attention_kernels.cu): PT-DiT's window and shifted-window
// attention straight from the fused qkv projection. Torch-free so nvcc stays fast; nn/proxy_attention.cpp
// checks shapes and dtypes and keeps the reference (gathers and attention_core).
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "ditgen/cuda/element_type.h"

namespace ditgen::cuda {

// softmax(q k^T * scale) v inside windows of `window_tokens` consecutive positions of an order of the stream's
// tokens: position i of that order is stream row order[i] (i itself without an order). With labels, a
// position attends only to the positions of its window whose label equals its own (Swin's regions). Rows are
// gathered as they are loaded and the output is written to each position's stream row, so the stream needs no
// reordering. One CTA computes one window of one head, one warp 16 of its queries, in fp32 on tensor cores
// (mma.sync, Ampere or newer), with an online softmax over keys in chunks of 64.
struct WindowAttentionArgs {
  const void* qkv = nullptr;        // [B, N, 3, H, hd]: the fused projection's output
  void* out = nullptr;              // [B, N, H, hd]
  const int64_t* order = nullptr;   // [N] or null
  const int32_t* labels = nullptr;  // [N] or null: each order position's region label
  int64_t batch = 0, tokens = 0, heads = 0, head_dim = 0, window_tokens = 0;
  float scale = 0.f;
};

// The sizes the kernel takes: head_dim a multiple of 8 up to kWindowAttentionMaxHeadDim, windows up to
// kWindowAttentionMaxTokens tokens.
constexpr int64_t kWindowAttentionMaxHeadDim = 128;
constexpr int64_t kWindowAttentionMaxTokens = 256;

// Dynamic shared memory a CTA needs for these sizes (the launcher raises the kernel's limit to it; callers check
// it against the device's).
int64_t window_attention_shared_bytes(int64_t window_tokens, int64_t head_dim, int64_t element_size);

// Launches on `stream` (fp16 or bf16 only; fp32 is an invalid value); returns the launch error (cudaSuccess
// when queued).
cudaError_t launch_window_attention(const WindowAttentionArgs& args, ElementType type, cudaStream_t stream);

}  // namespace ditgen::cuda
