#include "ditgen/nn/mlp.h"

namespace ditgen::nn {

MlpImpl::MlpImpl(int hidden_size, int mlp_hidden) {
  fc1 = register_module("fc1", LoRALinear(hidden_size, mlp_hidden));
  fc2 = register_module("fc2", LoRALinear(mlp_hidden, hidden_size));
}

at::Tensor MlpImpl::forward(const at::Tensor& x) {
  at::Tensor h = at::gelu(fc1->forward(x), "tanh");  // [B, N, M]
  return fc2->forward(h);                           // [B, N, D]
}

}  // namespace ditgen::nn
