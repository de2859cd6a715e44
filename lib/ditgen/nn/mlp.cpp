#include "ditgen/nn/mlp.h"

#include "ditgen/cuda/dispatch.h"

namespace ditgen::nn {

at::Tensor linear_gelu(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  if (!cuda::use_fused_path(x)) return at::gelu(at::linear(x, weight, bias), "tanh");
  std::vector<int64_t> out_shape = x.sizes().vec();
  out_shape.back() = weight.size(0);
  const at::Tensor rows = x.reshape({-1, x.size(-1)});                                                  // [R, in]
  return at::_addmm_activation(bias, rows, weight.t(), 1, 1, /*use_gelu=*/true).view(out_shape);        // [..., out]
}

at::Tensor linear_gelu(LoRALinearImpl& layer, const LinearInput& x) {
  if (x.values.defined() && layer.is_plain_linear()) return linear_gelu(x.values, layer.effective_weight(), layer.bias);
  return layer.forward_gelu(x);  // [..., out]
}

MlpImpl::MlpImpl(int hidden_size, int mlp_hidden) {
  fc1 = register_module("fc1", LoRALinear(hidden_size, mlp_hidden));
  fc2 = register_module("fc2", LoRALinear(mlp_hidden, hidden_size));
}

at::Tensor MlpImpl::forward(const at::Tensor& x) { return forward_input(LinearInput{x}); }

at::Tensor MlpImpl::forward_input(const LinearInput& x) {
  const at::Tensor h = linear_gelu(*fc1, x);  // [B, N, M]
  return fc2->forward(h);                     // [B, N, D]
}

}  // namespace ditgen::nn
