// The Hopper int8 GEMM with the dequantizing epilogue (int8_gemm_sm90.h), from CUTLASS 3.x's collective
// builders: a TMA-fed, warp-specialized ping-pong mainloop on int8 wgmma (128 x 128 x 128 tiles, clusters of
// 2 along M), and an epilogue visitor tree that applies the zero-point correction in int32, the two scales
// and the bias in fp32 (and for the MLP's first layer its GELU), and stores bf16 through TMA. Compiled for sm_90a only (wgmma needs the "a" target);
// two instantiations (with and without GELU) keep the build's cost to this translation unit.
#include "ditgen/quant/int8_gemm_sm90.h"

#if defined(DITGEN_INT8_SM90)

#include <type_traits>

#include <cute/tensor.hpp>
#include <cutlass/cutlass.h>
#include <cutlass/epilogue/collective/collective_builder.hpp>
#include <cutlass/epilogue/thread/activation.h>
#include <cutlass/epilogue/fusion/sm90_visitor_tma_warpspecialized.hpp>
#include <cutlass/gemm/collective/collective_builder.hpp>
#include <cutlass/gemm/device/gemm_universal_adapter.h>
#include <cutlass/gemm/dispatch_policy.hpp>
#include <cutlass/gemm/kernel/gemm_universal.hpp>
#include <cutlass/util/packed_stride.hpp>

namespace ditgen::quant {

namespace {

using namespace cute;
namespace fusion = cutlass::epilogue::fusion;

using TileShape = Shape<_128, _128, _128>;
using ClusterShape = Shape<_2, _1, _1>;
using Output = cutlass::bfloat16_t;
constexpr auto kRound = cutlass::FloatRoundStyle::round_to_nearest;

// Per-row vectors ([M], one value per token) broadcast along N; per-column ones ([N], per channel) along M.
template <typename T>
using PerToken = fusion::Sm90ColBroadcast<0, TileShape, T, T, Stride<_1, _0, int64_t>>;
template <typename T>
using PerChannel = fusion::Sm90RowBroadcast<0, TileShape, T, T, Stride<_0, _1, int64_t>>;

// acc - token_sum * channel_zero, in int32 (exact)
using ZeroCorrection = fusion::Sm90EVT<fusion::Sm90Compute<cutlass::multiplies, int32_t, int32_t, kRound>,
                                       PerToken<int32_t>, PerChannel<int32_t>>;
using Corrected = fusion::Sm90EVT<fusion::Sm90Compute<cutlass::minus, int32_t, int32_t, kRound>,
                                  fusion::Sm90AccFetch, ZeroCorrection>;
// channel_scale * corrected, in fp32
using ChannelScaled = fusion::Sm90EVT<fusion::Sm90Compute<cutlass::multiplies, float, float, kRound>,
                                      PerChannel<float>, Corrected>;
// token_scale * that + bias (fp32)
template <typename Out>
using Dequantize = fusion::Sm90EVT<fusion::Sm90Compute<cutlass::homogeneous_multiply_add, Out, float, kRound>,
                                   PerToken<float>, ChannelScaled, PerChannel<float>>;
// Either rounded once to bf16, or GELU (tanh form) of it first: the MLP's first layer.
using Plain = Dequantize<Output>;
using WithGelu = fusion::Sm90EVT<fusion::Sm90Compute<cutlass::epilogue::thread::GELU_taylor, Output, float, kRound>,
                                 Dequantize<float>>;

// Each node's arguments: {first child's, ..., last child's, the node's own}. A null vector pointer reads as its
// null_default (0): no zero points, no bias.
template <typename Out>
typename Dequantize<Out>::Arguments dequantize_arguments(const Int8GemmSm90Args& g) {
  return {
      {g.token_scales, 0.f, {}},  // token_scale
      {
          {g.channel_scales, 0.f, {}},  // channel_scale
          {
              {},  // acc
              {{g.token_sums, 0, {}}, {g.channel_zeros, 0, {}}, {}},  // token_sum * channel_zero
              {},  // minus
          },
          {},  // multiplies
      },
      {g.bias, 0.f, {}},  // bias
      {},                 // multiply-add
  };
}

template <class Fusion>
struct Sm90Gemm {
  using Epilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape, ClusterShape,
      cutlass::epilogue::collective::EpilogueTileAuto, int32_t, float,
      void, cutlass::layout::RowMajor, 8,     // no source C
      Output, cutlass::layout::RowMajor, 8,   // D
      cutlass::epilogue::TmaWarpSpecialized, Fusion>::CollectiveOp;

  using Mainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp,
      int8_t, cutlass::layout::RowMajor, 16,     // A [M, K]
      int8_t, cutlass::layout::ColumnMajor, 16,  // B [N, K] read as K x N column-major
      int32_t, TileShape, ClusterShape,
      cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(sizeof(typename Epilogue::SharedStorage))>,
      cutlass::gemm::KernelTmaWarpSpecializedPingpong>::CollectiveOp;

  using Kernel = cutlass::gemm::kernel::GemmUniversal<Shape<int, int, int, int>, Mainloop, Epilogue>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;

  static typename Gemm::Arguments arguments(const Int8GemmSm90Args& g) {
    const int m = static_cast<int>(g.m), n = static_cast<int>(g.n), k = static_cast<int>(g.k);
    using StrideA = typename Kernel::StrideA;
    using StrideB = typename Kernel::StrideB;
    using StrideD = typename Kernel::StrideD;
    const StrideA stride_a = cutlass::make_cute_packed_stride(StrideA{}, make_shape(m, k, 1));
    const StrideB stride_b = cutlass::make_cute_packed_stride(StrideB{}, make_shape(n, k, 1));
    const StrideD stride_d = cutlass::make_cute_packed_stride(StrideD{}, make_shape(m, n, 1));
    typename Gemm::Arguments args{cutlass::gemm::GemmUniversalMode::kGemm,
                                  {m, n, k, 1},
                                  {g.a, stride_a, g.b, stride_b},
                                  {{}, nullptr, stride_d, static_cast<Output*>(g.out), stride_d}};
    if constexpr (std::is_same_v<Fusion, WithGelu>)
      args.epilogue.thread = {dequantize_arguments<float>(g), {}};
    else
      args.epilogue.thread = dequantize_arguments<Output>(g);
    return args;
  }

  static size_t workspace_size(const Int8GemmSm90Args& g) { return Gemm::get_workspace_size(arguments(g)); }

  static cudaError_t launch(const Int8GemmSm90Args& g, void* workspace, cudaStream_t stream) {
    const typename Gemm::Arguments args = arguments(g);
    Gemm gemm;
    if (gemm.can_implement(args) != cutlass::Status::kSuccess) return cudaErrorNotSupported;
    if (gemm.initialize(args, workspace, stream) != cutlass::Status::kSuccess) return cudaErrorNotSupported;
    if (gemm.run(stream) != cutlass::Status::kSuccess)
      return cudaGetLastError() != cudaSuccess ? cudaErrorLaunchFailure : cudaErrorNotSupported;
    return cudaGetLastError();
  }
};

}  // namespace

bool int8_gemm_sm90_built() { return true; }

size_t int8_gemm_sm90_workspace_size(const Int8GemmSm90Args& args) {
  return args.gelu ? Sm90Gemm<WithGelu>::workspace_size(args) : Sm90Gemm<Plain>::workspace_size(args);
}

cudaError_t launch_int8_gemm_sm90(const Int8GemmSm90Args& g, void* workspace, cudaStream_t stream) {
  if (!int8_gemm_sm90_takes(g.m, g.n, g.k)) return cudaErrorInvalidValue;
  if (g.m == 0 || g.n == 0) return cudaSuccess;
  return g.gelu ? Sm90Gemm<WithGelu>::launch(g, workspace, stream) : Sm90Gemm<Plain>::launch(g, workspace, stream);
}

}  // namespace ditgen::quant

#else  // built without CUTLASS or sm_90a: the caller falls back

namespace ditgen::quant {
bool int8_gemm_sm90_built() { return false; }
size_t int8_gemm_sm90_workspace_size(const Int8GemmSm90Args&) { return 0; }
cudaError_t launch_int8_gemm_sm90(const Int8GemmSm90Args&, void*, cudaStream_t) { return cudaErrorNotSupported; }
}  // namespace ditgen::quant

#endif

namespace ditgen::quant {
bool int8_gemm_sm90_takes(int64_t m, int64_t n, int64_t k) {
  constexpr int64_t kIntMax = 0x7fffffff;
  return k > 0 && k % 16 == 0 && n % 8 == 0 && m <= kIntMax && n <= kIntMax && k <= kIntMax;
}
}  // namespace ditgen::quant
