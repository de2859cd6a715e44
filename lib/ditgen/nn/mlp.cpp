#include "ditgen/nn/mlp.h"

#include "ditgen/cuda/adaln.h"

namespace ditgen::nn {

MlpImpl::MlpImpl(int hidden_size, int mlp_hidden) {
  fc1 = register_module("fc1", LoRALinear(hidden_size, mlp_hidden));
  fc2 = register_module("fc2", LoRALinear(mlp_hidden, hidden_size));
}

at::Tensor MlpImpl::forward(const at::Tensor& x) {
  if (cuda::use_fused_path(x) && fc1->is_plain_linear()) {
    // GELU as the GEMM's epilogue (cuBLASLt GELU_BIAS, tanh form): the [B, N, M] hidden is written once.
    at::Tensor rows = x.reshape({-1, x.size(-1)});                                              // [B*N, D]
    at::Tensor h = at::_addmm_activation(fc1->bias, rows, fc1->effective_weight().t(), 1, 1, /*use_gelu=*/true);  // [B*N, M]
    return fc2->forward(h).view({x.size(0), x.size(1), -1});                                    // [B, N, D]
  }
  at::Tensor h = at::gelu(fc1->forward(x), "tanh");  // [B, N, M]
  return fc2->forward(h);                           // [B, N, D]
}

}  // namespace ditgen::nn
