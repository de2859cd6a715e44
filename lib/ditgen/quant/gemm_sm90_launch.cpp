// Checks and launches of the Hopper GEMM from LibTorch tensors.
#include "ditgen/quant/gemm_sm90_launch.h"

#include "ditgen/quant/gemm_sm90.h"

#ifdef DITGEN_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#endif

namespace ditgen::quant {

bool gemm_sm90_runs(const at::Device& device, int64_t m, int64_t n, int64_t k) {
#ifdef DITGEN_HAVE_CUDA
  if (!device.is_cuda() || !gemm_sm90_built() || !gemm_sm90_takes(m, n, k)) return false;
  return at::cuda::getDeviceProperties(device.index())->major == 9;
#else
  (void)device, (void)m, (void)n, (void)k;
  return false;
#endif
}

at::Tensor gemm_sm90(const at::Tensor& a, const at::Tensor& b, const at::Tensor& token_scales,
                     const at::Tensor& channel_scales, const at::Tensor& bias, bool gelu,
                     const at::Tensor& token_sums, const at::Tensor& channel_zeros) {
#ifdef DITGEN_HAVE_CUDA
  const bool int8 = a.scalar_type() == at::kChar;
  TORCH_CHECK((int8 || a.scalar_type() == at::kFloat8_e4m3fn) && b.scalar_type() == a.scalar_type() && a.dim() == 2 &&
                  b.dim() == 2 && a.size(1) == b.size(1),
              "the sm90 GEMM takes a [M, K] and b [N, K], both int8 or both e4m3");
  const at::Tensor a_rows = a.contiguous(), b_rows = b.contiguous();                 // [M, K], [N, K]
  const at::Tensor row_scales = token_scales.reshape({-1}).to(at::kFloat).contiguous();  // [M]
  const at::Tensor column_scales = channel_scales.to(at::kFloat).contiguous();         // [N]
  const at::Tensor bias_f32 = bias.defined() ? bias.to(at::kFloat).contiguous() : at::Tensor();  // [N]
  const at::Tensor sums = token_sums.defined() ? token_sums.reshape({-1}).contiguous() : at::Tensor();  // [M]
  const at::Tensor zeros = channel_zeros.defined() ? channel_zeros.contiguous() : at::Tensor();        // [N]
  at::Tensor out = at::empty({a.size(0), b.size(0)}, a.options().dtype(at::kBFloat16));  // [M, N]
  GemmSm90Args args;
  args.operands = int8 ? GemmOperands::Int8 : GemmOperands::Fp8E4M3;
  args.a = a_rows.data_ptr();
  args.b = b_rows.data_ptr();
  args.token_scales = row_scales.data_ptr<float>();
  args.channel_scales = column_scales.data_ptr<float>();
  args.token_sums = sums.defined() ? sums.data_ptr<int32_t>() : nullptr;
  args.channel_zeros = zeros.defined() ? zeros.data_ptr<int32_t>() : nullptr;
  args.bias = bias_f32.defined() ? bias_f32.data_ptr<float>() : nullptr;
  args.out = out.data_ptr();
  args.m = a.size(0);
  args.n = b.size(0);
  args.k = a.size(1);
  args.gelu = gelu;
  c10::cuda::CUDAGuard guard(a.device());
  const at::Tensor workspace = at::empty({static_cast<int64_t>(gemm_sm90_workspace_size(args))},
                                         a.options().dtype(at::kByte));
  const cudaError_t err = launch_gemm_sm90(args, workspace.data_ptr(), at::cuda::getCurrentCUDAStream());
  TORCH_CHECK(err == cudaSuccess, "the sm90 GEMM failed: ", cudaGetErrorString(err));
  return out;
#else
  (void)a, (void)b, (void)token_scales, (void)channel_scales, (void)bias, (void)gelu, (void)token_sums,
      (void)channel_zeros;
  TORCH_CHECK(false, "the sm90 GEMM needs a CUDA build");
#endif
}

}  // namespace ditgen::quant
