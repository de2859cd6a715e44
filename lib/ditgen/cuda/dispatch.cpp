#include "ditgen/cuda/dispatch.h"

#include <atomic>

#include <ATen/Context.h>
#include <ATen/autocast_mode.h>
#include <c10/core/GradMode.h>

#ifdef DITGEN_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>

#include "ditgen/cuda/adaln_kernels.h"
#include "ditgen/cuda/s4d_scan_kernels.h"
#include "ditgen/cuda/window_attention_kernels.h"
#endif

namespace ditgen::cuda {

namespace {

std::atomic<bool> g_fused_enabled{true};
std::atomic<bool> g_s4d_scan_enabled{false};

bool is_kernel_dtype(const at::Tensor& t) {
  const auto type = t.scalar_type();
  return type == at::kFloat || type == at::kHalf || type == at::kBFloat16;
}

#ifdef DITGEN_HAVE_CUDA
// A [B, D] conditioning tensor the adaLN kernel can index as rows with a stride.
bool condition_fits(const at::Tensor& c, const at::Tensor& x, int64_t pack) {
  return c.dim() == 2 && c.size(0) == x.size(0) && c.size(1) == x.size(2) && c.stride(1) == 1 &&
         c.stride(0) % pack == 0 && c.scalar_type() == x.scalar_type() && c.device() == x.device() && is_16_byte_aligned(c);
}
#endif

}  // namespace

bool fused_kernels_enabled() { return g_fused_enabled.load(); }
void set_fused_kernels_enabled(bool enabled) { g_fused_enabled.store(enabled); }
bool s4d_scan_kernel_enabled() { return g_s4d_scan_enabled.load(); }
void set_s4d_scan_kernel_enabled(bool enabled) { g_s4d_scan_enabled.store(enabled); }

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

bool adaln_kernel_supports(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale) {
#ifdef DITGEN_HAVE_CUDA
  if (!x.is_cuda() || !is_kernel_dtype(x)) return false;
  const int64_t pack = 16 / x.element_size();
  return x.dim() == 3 && x.is_contiguous() && is_16_byte_aligned(x) && x.size(2) % pack == 0 && x.size(2) <= kAdaLnMaxDim &&
         condition_fits(shift, x, pack) && condition_fits(scale, x, pack);
#else
  (void)x, (void)shift, (void)scale;
  return false;
#endif
}

bool adaln_runs_kernel(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale) {
  return use_fused_path(x) && adaln_kernel_supports(x, shift, scale);
}

bool gated_residual_runs_kernel(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& branch,
                                const at::Tensor& shift, const at::Tensor& scale) {
  return adaln_runs_kernel(x, shift, scale) && adaln_kernel_supports(branch, gate, gate) &&
         branch.sizes() == x.sizes() && branch.scalar_type() == x.scalar_type();
}

bool token_grid_runs_kernel(const at::Tensor& tokens, const at::Tensor& other) {
#ifdef DITGEN_HAVE_CUDA
  return use_fused_path(tokens) && is_kernel_dtype(tokens) && tokens.scalar_type() == other.scalar_type() &&
         tokens.device() == other.device() && tokens.dim() == 3 && tokens.is_contiguous() &&
         is_16_byte_aligned(tokens) && tokens.size(2) % (16 / tokens.element_size()) == 0;
#else
  (void)tokens, (void)other;
  return false;
#endif
}

bool s4d_scan_kernel_supports(const at::Tensor& u, int64_t modes) {
#ifdef DITGEN_HAVE_CUDA
  return u.is_cuda() && u.dim() == 3 && u.is_contiguous() && u.numel() > 0 && is_kernel_dtype(u) &&
         modes <= kS4dMaxModes;
#else
  (void)u, (void)modes;
  return false;
#endif
}

bool s4d_scan_runs_kernel(const at::Tensor& u, int64_t modes) {
  return s4d_scan_kernel_enabled() && use_fused_path(u) && s4d_scan_kernel_supports(u, modes);
}

bool window_attention_runs_kernel(const at::Tensor& qkv, int64_t heads, int64_t window_tokens) {
#ifdef DITGEN_HAVE_CUDA
  const int64_t hd = qkv.size(2) / 3 / heads;
  if (!use_fused_half_path(qkv) || !qkv.is_contiguous() || !is_16_byte_aligned(qkv) || hd % 8 != 0 ||
      hd > kWindowAttentionMaxHeadDim || window_tokens > kWindowAttentionMaxTokens)
    return false;
  return window_attention_shared_bytes(window_tokens, hd, qkv.element_size()) <=
         static_cast<int64_t>(at::cuda::getDeviceProperties(qkv.device().index())->sharedMemPerBlockOptin);
#else
  (void)qkv, (void)heads, (void)window_tokens;
  return false;
#endif
}

bool variable_length_flash_runs(const at::Tensor& q) {
  const int64_t hd = q.size(3);
  return use_fused_half_path(q) && hd % 8 == 0 && hd <= 256 && at::globalContext().userEnabledFlashSDP();
}

bool is_16_byte_aligned(const at::Tensor& t) { return reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0; }

ElementType element_type_of(const at::Tensor& x) {
  const auto t = x.scalar_type();
  return t == at::kFloat ? ElementType::Float32 : t == at::kHalf ? ElementType::Float16 : ElementType::BFloat16;
}

}  // namespace ditgen::cuda
