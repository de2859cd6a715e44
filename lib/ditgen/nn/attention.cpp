#include "ditgen/nn/attention.h"

namespace ditgen::nn {

AttentionImpl::AttentionImpl(int hidden_size, int num_heads) : num_heads_(num_heads) {
  qkv = register_module("qkv", LoRALinear(hidden_size, 3 * hidden_size));
  proj = register_module("proj", LoRALinear(hidden_size, hidden_size));
}

at::Tensor AttentionImpl::forward(const at::Tensor& x) {
  const int64_t B = x.size(0), N = x.size(1), D = x.size(2);
  at::Tensor h = qkv->forward(x)                                 // [B, N, 3D]
                     .view({B, N, 3, num_heads_, D / num_heads_})  // [B, N, 3, H, hd]
                     .permute({2, 0, 3, 1, 4});                    // [3, B, H, N, hd]
  // SDPA picks flash / memory-efficient / math kernels by device and dtype; math equals softmax(qk^T/sqrt(hd))v.
  at::Tensor o = at::scaled_dot_product_attention(h[0], h[1], h[2]);  // [B, H, N, hd]
  o = o.transpose(1, 2).reshape({B, N, D});                            // [B, N, D]
  return proj->forward(o);                                             // [B, N, D]
}

}  // namespace ditgen::nn
