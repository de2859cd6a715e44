#include "ditgen/cuda/adaln.h"

#include <atomic>
#include <cstdint>

#include <ATen/autocast_mode.h>
#include <c10/core/GradMode.h>

#include "ditgen/nn/dit_block.h"

#ifdef DITGEN_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "ditgen/cuda/adaln_kernels.h"
#endif

namespace ditgen::cuda {

namespace {
std::atomic<bool> g_fused_enabled{true};
}  // namespace

bool fused_kernels_enabled() { return g_fused_enabled.load(); }
void set_fused_kernels_enabled(bool enabled) { g_fused_enabled.store(enabled); }

bool use_fused_path(const at::Tensor& x) {
  // Not under autocast: the fused ops (GELU epilogue GEMM, adaLN kernels) are outside its cast lists, so a
  // no-grad forward inside a bf16 training step (a distillation teacher) would mix dtypes.
  return fused_kernels_enabled() && x.is_cuda() && !at::GradMode::is_enabled() &&
         !at::autocast::is_autocast_enabled(at::kCUDA);
}

bool use_fused_half_path(const at::Tensor& x) {
  const auto t = x.scalar_type();
  if (!use_fused_path(x) || (t != at::kHalf && t != at::kBFloat16)) return false;
#ifdef DITGEN_HAVE_CUDA
  return at::cuda::getDeviceProperties(x.device().index())->major >= 8;
#else
  return false;
#endif
}

bool is_16_byte_aligned(const at::Tensor& t) { return reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0; }

ElementType element_type_of(const at::Tensor& x) {
  const auto t = x.scalar_type();
  return t == at::kFloat ? ElementType::Float32 : t == at::kHalf ? ElementType::Float16 : ElementType::BFloat16;
}

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

// A [B, D] conditioning tensor the kernel can index as rows with a stride.
bool condition_fits(const at::Tensor& c, const at::Tensor& x, int64_t pack) {
  return c.dim() == 2 && c.size(0) == x.size(0) && c.size(1) == x.size(2) && c.stride(1) == 1 &&
         c.stride(0) % pack == 0 && c.scalar_type() == x.scalar_type() && c.device() == x.device() && is_16_byte_aligned(c);
}

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

}  // namespace
#endif

bool adaln_kernel_supports(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale) {
#ifdef DITGEN_HAVE_CUDA
  const auto t = x.scalar_type();
  if (!x.is_cuda() || (t != at::kFloat && t != at::kHalf && t != at::kBFloat16)) return false;
  const int64_t pack = 16 / x.element_size();
  return x.dim() == 3 && x.is_contiguous() && is_16_byte_aligned(x) && x.size(2) % pack == 0 && x.size(2) <= kAdaLnMaxDim &&
         condition_fits(shift, x, pack) && condition_fits(scale, x, pack);
#else
  (void)x, (void)shift, (void)scale;
  return false;
#endif
}

at::Tensor layer_norm_modulate(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale) {
#ifdef DITGEN_HAVE_CUDA
  if (use_fused_path(x) && adaln_kernel_supports(x, shift, scale)) {
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

#ifdef DITGEN_HAVE_CUDA
namespace {
// Whether the fused residual kernel takes x, gate and branch (and the norm's shift and scale).
bool residual_kernel_takes(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& branch,
                           const at::Tensor& shift, const at::Tensor& scale) {
  return use_fused_path(x) && adaln_kernel_supports(x, shift, scale) && adaln_kernel_supports(branch, gate, gate) &&
         branch.sizes() == x.sizes() && branch.scalar_type() == x.scalar_type();
}
}  // namespace
#endif

std::pair<at::Tensor, at::Tensor> gated_residual_layer_norm_modulate(const at::Tensor& x, const at::Tensor& gate,
                                                                     const at::Tensor& branch, const at::Tensor& shift,
                                                                     const at::Tensor& scale) {
#ifdef DITGEN_HAVE_CUDA
  if (residual_kernel_takes(x, gate, branch, shift, scale)) {
    at::Tensor x_out = at::empty_like(x), y = at::empty_like(x);  // [B, N, D] each
    AdaLnArgs args;
    args.x = x.data_ptr();
    args.branch = branch.data_ptr();
    args.x_out = x_out.data_ptr();
    args.y = y.data_ptr();
    run_kernel(args, x, gate, shift, scale);
    return {x_out, y};
  }
#endif
  return gated_residual_layer_norm_modulate_reference(x, gate, branch, shift, scale);
}

at::Tensor gated_residual(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& branch) {
#ifdef DITGEN_HAVE_CUDA
  if (residual_kernel_takes(x, gate, branch, gate, gate)) {
    at::Tensor x_out = at::empty_like(x);  // [B, N, D]
    AdaLnArgs args;
    args.x = x.data_ptr();
    args.branch = branch.data_ptr();
    args.x_out = x_out.data_ptr();
    run_kernel(args, x, gate, gate, gate);  // shift and scale unread: no norm
    return x_out;
  }
#endif
  return gated_residual_reference(x, gate, branch);
}

}  // namespace ditgen::cuda
