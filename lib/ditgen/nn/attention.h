// Multi-head attention: self-attention over all tokens (timm's Attention: fused qkv with bias, output
// projection), cross attention between two token sets, and the attention core both run.
#pragma once

#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>

#include "ditgen/nn/lora.h"

namespace ditgen::nn {

// Windows whose tokens fall into regions that attend only within themselves (Swin's shifted windows), the
// tokens of each region contiguous. Default: no regions, every token of a window attends to all.
struct WindowRegions {
  at::Tensor mask;       // [P, n, n] bool: which tokens of each window attend to which (undefined: all)
  at::Tensor starts;     // [R + 1] int32: where each region starts among one image's P * n tokens, then P * n
  int64_t longest = 0;   // tokens in the longest region
  at::Tensor labels;     // [P * n] int32: each token's region, distinct across windows (tokens attend where equal)
};

class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(int hidden_size, int num_heads);
  at::Tensor forward(const at::Tensor& x);    // [B, N, D] -> [B, N, D]
  at::Tensor forward_input(const LinearInput& x);  // the same, qkv given float or quantized tokens

  int num_heads() const { return num_heads_; }

  LoRALinear qkv{nullptr};
  LoRALinear proj{nullptr};

 private:
  int num_heads_;
};
TORCH_MODULE(Attention);

// Multi-head attention of queries from one token set over keys and values from another: separate q and
// kv projections (a DiT block's qkv rows split), output projection. `context_mask` [B, N] bool (optional)
// marks the context tokens attended to; every row needs one. The projections are LoRALinear (as in
// Attention) so that adapters and quantization act on them through forward().
class CrossAttentionImpl : public torch::nn::Module {
 public:
  CrossAttentionImpl(int hidden_size, int num_heads);
  at::Tensor forward(const at::Tensor& queries, const at::Tensor& context,
                     const at::Tensor& context_mask = {});  // [B, M, D], [B, N, D] -> [B, M, D]

  LoRALinear q{nullptr};
  LoRALinear kv{nullptr};
  LoRALinear proj{nullptr};

 private:
  int num_heads_;
};
TORCH_MODULE(CrossAttention);

// A fused qkv projection's output split into heads. [B, N, 3D] -> [3, B, H, N, hd] (a view)
at::Tensor split_heads(const at::Tensor& qkv, int64_t heads);
// The heads' outputs as tokens. [B, H, N, hd] -> [B, N, D]
at::Tensor merge_heads(const at::Tensor& o);

// softmax(q k^T / sqrt(hd)) v; with regions, q, k, v hold B * P windows of n tokens (window index = batch index
// modulo P) whose regions attend only within themselves. The reference is
// SDPA with the regions' mask; the fused path (CUDA, half precision, inference) runs the regions as
// variable-length sequences through flash attention, which takes no mask: no masked kernel, no masked work.
// q, k, v [B * P, H, n, hd] (variable-length: each [B * P, n, H, hd] once transposed, as sliced from a fused
// qkv projection, else copied) -> [B * P, H, n, hd]
at::Tensor attention_core(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                          const WindowRegions& regions = {});
// Whether attention_core runs these queries' regions as variable-length flash attention: there are regions,
// and cuda::variable_length_flash_runs holds.
bool regions_run_variable_length(const at::Tensor& q, const WindowRegions& regions);

// Puts one SDPA backend (flash, cudnn, efficient, math) first in the order torch tries them, the others in
// torch's own order after it; "auto" restores torch's order (on an H100 cuDNN first). Process-wide.
// Error(Usage) for another name.
void prefer_attention_backend(const std::string& name);
// The backend SDPA runs for queries [batch, heads, tokens, head_dim] with these options ("flash", "cudnn",
// "efficient", "math"), as torch chooses it now.
std::string attention_backend(int64_t batch, int64_t heads, int64_t tokens, int64_t head_dim,
                              const at::TensorOptions& options);

}  // namespace ditgen::nn
