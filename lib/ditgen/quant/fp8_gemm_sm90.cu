// The FP8 (e4m3) instantiations of the Hopper GEMM (gemm_sm90.h, gemm_sm90.cuh): with and without GELU.
#include "ditgen/quant/gemm_sm90.h"

#if defined(DITGEN_GEMM_SM90)
#include "ditgen/quant/gemm_sm90.cuh"

namespace ditgen::quant::detail {
size_t fp8_gemm_sm90_workspace_size(const GemmSm90Args& g) { return sm90::workspace_size<cutlass::float_e4m3_t>(g); }
cudaError_t launch_fp8_gemm_sm90(const GemmSm90Args& g, void* workspace, cudaStream_t stream) {
  return sm90::launch<cutlass::float_e4m3_t>(g, workspace, stream);
}
}  // namespace ditgen::quant::detail
#endif
