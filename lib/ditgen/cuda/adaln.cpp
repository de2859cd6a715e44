#include "ditgen/cuda/adaln.h"

#include "ditgen/cuda/dispatch.h"
#include "ditgen/nn/dit_block.h"

#ifdef DITGEN_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "ditgen/cuda/adaln_kernels.h"
#endif

namespace ditgen::cuda {

at::Tensor layer_norm_modulate_reference(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale) {
  return nn::modulate(nn::layer_norm_plain(x), shift, scale);  // [B, N, D]
}

at::Tensor gated_residual_reference(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& branch) {
  return x + gate.unsqueeze(1) * branch;  // [B, N, D]
}

std::pair<at::Tensor, at::Tensor> gated_residual_layer_norm_modulate_reference(
    const at::Tensor& x, const at::Tensor& gate, const at::Tensor& branch, const at::Tensor& shift,
    const at::Tensor& scale) {
  at::Tensor x_out = gated_residual_reference(x, gate, branch);             // [B, N, D]
  return {x_out, layer_norm_modulate_reference(x_out, shift, scale)};       // 2 x [B, N, D]
}

#ifdef DITGEN_HAVE_CUDA
namespace {

void run_kernel(AdaLnArgs& args, const at::Tensor& x, const at::Tensor& gate, const at::Tensor& shift,
                const at::Tensor& scale) {
  args.rows = x.size(0) * x.size(1);
  args.tokens_per_sample = x.size(1);
  args.dim = x.size(2);
  args.shift = shift.data_ptr();
  args.scale = scale.data_ptr();
  args.shift_stride = shift.stride(0);
  args.scale_stride = scale.stride(0);
  if (gate.defined()) {
    args.gate = gate.data_ptr();
    args.gate_stride = gate.stride(0);
  }
  c10::cuda::CUDAGuard guard(x.device());
  const cudaError_t err = launch_adaln(args, element_type_of(x), at::cuda::getCurrentCUDAStream());
  TORCH_CHECK(err == cudaSuccess, "fused adaLN kernel failed: ", cudaGetErrorString(err));
}

// The gated residual's part of the arguments: x + gate * branch written to a new tensor, returned.
at::Tensor residual_into(AdaLnArgs& args, const at::Tensor& x, const at::Tensor& branch) {
  at::Tensor x_out = at::empty_like(x);  // [B, N, D]
  args.x = x.data_ptr();
  args.branch = branch.data_ptr();
  args.x_out = x_out.data_ptr();
  return x_out;
}

// Int8 outputs for the quantizing kernel: values like x, a scale and a sum per token.
quant::QuantizedActivation quantized_like(const at::Tensor& x, AdaLnArgs& args) {
  quant::QuantizedActivation q;
  q.values = at::empty(x.sizes(), x.options().dtype(at::kChar));                  // [B, N, D]
  q.scales = at::empty({x.size(0), x.size(1)}, x.options().dtype(at::kFloat));   // [B, N]
  q.sums = at::empty({x.size(0), x.size(1)}, x.options().dtype(at::kInt));       // [B, N]
  args.y_values = q.values.data_ptr<int8_t>();
  args.y_scales = q.scales.data_ptr<float>();
  args.y_sums = q.sums.data_ptr<int32_t>();
  return q;
}

}  // namespace
#endif

at::Tensor layer_norm_modulate(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale) {
#ifdef DITGEN_HAVE_CUDA
  if (adaln_runs_kernel(x, shift, scale)) {
    at::Tensor y = at::empty_like(x);  // [B, N, D]
    AdaLnArgs args;
    args.x = x.data_ptr();
    args.y = y.data_ptr();
    run_kernel(args, x, at::Tensor(), shift, scale);
    return y;
  }
#endif
  return layer_norm_modulate_reference(x, shift, scale);
}

std::pair<at::Tensor, at::Tensor> gated_residual_layer_norm_modulate(const at::Tensor& x, const at::Tensor& gate,
                                                                     const at::Tensor& branch, const at::Tensor& shift,
                                                                     const at::Tensor& scale) {
#ifdef DITGEN_HAVE_CUDA
  if (gated_residual_runs_kernel(x, gate, branch, shift, scale)) {
    AdaLnArgs args;
    const at::Tensor x_out = residual_into(args, x, branch);  // [B, N, D]
    at::Tensor y = at::empty_like(x);                         // [B, N, D]
    args.y = y.data_ptr();
    run_kernel(args, x, gate, shift, scale);
    return {x_out, y};
  }
#endif
  return gated_residual_layer_norm_modulate_reference(x, gate, branch, shift, scale);
}

quant::QuantizedActivation layer_norm_modulate_quantized(const at::Tensor& x, const at::Tensor& shift,
                                                         const at::Tensor& scale) {
#ifdef DITGEN_HAVE_CUDA
  if (adaln_runs_kernel(x, shift, scale)) {
    AdaLnArgs args;
    args.x = x.data_ptr();
    quant::QuantizedActivation q = quantized_like(x, args);
    run_kernel(args, x, at::Tensor(), shift, scale);
    return q;
  }
#endif
  return quant::quantize_per_token(layer_norm_modulate(x, shift, scale));
}

std::pair<at::Tensor, quant::QuantizedActivation> gated_residual_layer_norm_modulate_quantized(
    const at::Tensor& x, const at::Tensor& gate, const at::Tensor& branch, const at::Tensor& shift,
    const at::Tensor& scale) {
#ifdef DITGEN_HAVE_CUDA
  if (gated_residual_runs_kernel(x, gate, branch, shift, scale)) {
    AdaLnArgs args;
    const at::Tensor x_out = residual_into(args, x, branch);  // [B, N, D]
    quant::QuantizedActivation q = quantized_like(x, args);
    run_kernel(args, x, gate, shift, scale);
    return {x_out, q};
  }
#endif
  auto [x_out, y] = gated_residual_layer_norm_modulate(x, gate, branch, shift, scale);
  return {x_out, quant::quantize_per_token(y)};
}

at::Tensor gated_residual(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& branch) {
#ifdef DITGEN_HAVE_CUDA
  if (gated_residual_runs_kernel(x, gate, branch, gate, gate)) {
    AdaLnArgs args;
    const at::Tensor x_out = residual_into(args, x, branch);  // [B, N, D]
    run_kernel(args, x, gate, gate, gate);  // shift and scale unread: no norm
    return x_out;
  }
#endif
  return gated_residual_reference(x, gate, branch);
}

}  // namespace ditgen::cuda
