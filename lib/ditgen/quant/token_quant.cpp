// Checks and launches of the per-token quantization kernels.
#include "ditgen/quant/token_quant.h"

#ifdef DITGEN_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "ditgen/cuda/dispatch.h"
#include "ditgen/quant/token_quant_kernels.h"
#endif

namespace ditgen::quant {

bool token_quant_runs_kernel(const at::Tensor& x) {
#ifdef DITGEN_HAVE_CUDA
  if (!x.defined() || !x.is_cuda() || x.dim() < 1 || at::GradMode::is_enabled()) return false;
  const auto type = x.scalar_type();
  if (type != at::kFloat && type != at::kHalf && type != at::kBFloat16) return false;
  return x.size(-1) > 0 && x.size(-1) * x.element_size() % 16 == 0;
#else
  (void)x;
  return false;
#endif
}

namespace {

#ifdef DITGEN_HAVE_CUDA
// x as the kernel reads it: contiguous rows starting on a 16-byte boundary (a copy where x is not).
at::Tensor kernel_rows(const at::Tensor& x) {
  return x.is_contiguous() && cuda::is_16_byte_aligned(x) ? x : x.clone(at::MemoryFormat::Contiguous);
}

void launch(const at::Tensor& x, const at::Tensor& values, const at::Tensor& scales, const at::Tensor& sums,
            TokenFormat format) {
  TokenQuantArgs args;
  args.x = x.data_ptr();
  args.values = values.data_ptr();
  args.scales = scales.data_ptr<float>();
  args.sums = sums.defined() ? sums.data_ptr<int32_t>() : nullptr;
  args.dim = x.size(-1);
  args.rows = x.numel() / args.dim;
  c10::cuda::CUDAGuard guard(x.device());
  const cudaError_t err = launch_token_quant(args, cuda::element_type_of(x), format, at::cuda::getCurrentCUDAStream());
  TORCH_CHECK(err == cudaSuccess, "per-token quantization kernel failed: ", cudaGetErrorString(err));
}
#endif

void require_kernel(const at::Tensor& x) {
  if (!token_quant_runs_kernel(x))
    throw Error(ErrorKind::Usage, "the per-token quantization kernel needs CUDA rows of 16-byte multiples");
}

}  // namespace

QuantizedActivation quantize_per_token_kernel(const at::Tensor& x) {
  require_kernel(x);
  QuantizedActivation out;
#ifdef DITGEN_HAVE_CUDA
  const auto token_sizes = x.sizes().slice(0, x.dim() - 1);
  out.values = at::empty(x.sizes(), x.options().dtype(at::kChar));       // [..., K]
  out.scales = at::empty(token_sizes, x.options().dtype(at::kFloat));    // [...]
  out.sums = at::empty(token_sizes, x.options().dtype(at::kInt));        // [...]
  launch(kernel_rows(x), out.values, out.scales, out.sums, TokenFormat::Int8);
#endif
  return out;
}

Fp8Tokens quantize_per_token_fp8_kernel(const at::Tensor& x) {
  require_kernel(x);
  Fp8Tokens out;
#ifdef DITGEN_HAVE_CUDA
  out.values = at::empty(x.sizes(), x.options().dtype(at::kFloat8_e4m3fn));  // [..., K]
  out.scales = at::empty(x.sizes().slice(0, x.dim() - 1), x.options().dtype(at::kFloat));  // [...]
  launch(kernel_rows(x), out.values, out.scales, at::Tensor(), TokenFormat::Fp8E4M3);
#endif
  return out;
}

}  // namespace ditgen::quant
