// The Hopper GEMM's entry points (gemm_sm90.h): size checks and the dispatch to each operand type's
// instantiations. Built without CUTLASS or sm_90a, it reports the kernels missing and the callers fall back.
#include "ditgen/quant/gemm_sm90.h"

namespace ditgen::quant {

bool gemm_sm90_takes(int64_t m, int64_t n, int64_t k) {
  constexpr int64_t kIntMax = 0x7fffffff;
  return k > 0 && k % 16 == 0 && n % 8 == 0 && m <= kIntMax && n <= kIntMax && k <= kIntMax;
}

#if defined(DITGEN_GEMM_SM90)

bool gemm_sm90_built() { return true; }

size_t gemm_sm90_workspace_size(const GemmSm90Args& g) {
  return g.operands == GemmOperands::Int8 ? detail::int8_gemm_sm90_workspace_size(g)
                                          : detail::fp8_gemm_sm90_workspace_size(g);
}

cudaError_t launch_gemm_sm90(const GemmSm90Args& g, void* workspace, cudaStream_t stream) {
  if (!gemm_sm90_takes(g.m, g.n, g.k)) return cudaErrorInvalidValue;
  if (g.m == 0 || g.n == 0) return cudaSuccess;
  return g.operands == GemmOperands::Int8 ? detail::launch_int8_gemm_sm90(g, workspace, stream)
                                          : detail::launch_fp8_gemm_sm90(g, workspace, stream);
}

#else

bool gemm_sm90_built() { return false; }
size_t gemm_sm90_workspace_size(const GemmSm90Args&) { return 0; }
cudaError_t launch_gemm_sm90(const GemmSm90Args&, void*, cudaStream_t) { return cudaErrorNotSupported; }

#endif

}  // namespace ditgen::quant
