// The Hopper GEMM of gemm_sm90.h as a CUTLASS 3.x template, from its collective builders: a TMA-fed,
// warp-specialized ping-pong mainloop (128 x 128 x 128 tiles, clusters of 2 along M), and an epilogue visitor
// tree that dequantizes in fp32 (the zero-point correction in int32 first, for int8) and stores bf16 through
// TMA. Included by int8_gemm_sm90.cu and fp8_gemm_sm90.cu only (compiled for sm_90a: wgmma needs the "a" target).
#pragma once

#include <type_traits>

#include <cute/tensor.hpp>
#include <cutlass/cutlass.h>
#include <cutlass/epilogue/collective/collective_builder.hpp>
#include <cutlass/epilogue/fusion/sm90_visitor_tma_warpspecialized.hpp>
#include <cutlass/epilogue/thread/activation.h>
#include <cutlass/gemm/collective/collective_builder.hpp>
#include <cutlass/gemm/device/gemm_universal_adapter.h>
#include <cutlass/gemm/dispatch_policy.hpp>
#include <cutlass/gemm/kernel/gemm_universal.hpp>
#include <cutlass/util/packed_stride.hpp>

#include "ditgen/quant/gemm_sm90.h"

namespace ditgen::quant::sm90 {

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

// token_scale * (channel_scale * corrected) + bias, in fp32, as Out.
template <typename Out, typename Corrected>
using Dequantize = fusion::Sm90EVT<
    fusion::Sm90Compute<cutlass::homogeneous_multiply_add, Out, float, kRound>, PerToken<float>,
    fusion::Sm90EVT<fusion::Sm90Compute<cutlass::multiplies, float, float, kRound>, PerChannel<float>, Corrected>,
    PerChannel<float>>;

// Each node's arguments: {first child's, ..., last child's, the node's own}. A null vector pointer reads as its
// null_default (0): no zero points, no bias.
template <typename Out, typename Corrected>
typename Dequantize<Out, Corrected>::Arguments dequantize_arguments(const GemmSm90Args& g,
                                                                   typename Corrected::Arguments corrected) {
  return {
      {g.token_scales, 0.f, {}},                             // token_scale
      {{g.channel_scales, 0.f, {}}, corrected, {}},          // channel_scale * corrected
      {g.bias, 0.f, {}},                                     // bias
      {},                                                    // multiply-add
  };
}

// What differs between the operand types: the element, the accumulator, the mainloop schedule, and what the
// accumulator needs before the scales.
template <typename Element>
struct Operands;

template <>
struct Operands<int8_t> {
  using Accumulator = int32_t;
  using Schedule = cutlass::gemm::KernelTmaWarpSpecializedPingpong;
  // acc - token_sum * channel_zero, in int32 (exact)
  using Corrected = fusion::Sm90EVT<
      fusion::Sm90Compute<cutlass::minus, int32_t, int32_t, kRound>, fusion::Sm90AccFetch,
      fusion::Sm90EVT<fusion::Sm90Compute<cutlass::multiplies, int32_t, int32_t, kRound>, PerToken<int32_t>,
                      PerChannel<int32_t>>>;
  static typename Corrected::Arguments corrected_arguments(const GemmSm90Args& g) {
    return {{}, {{g.token_sums, 0, {}}, {g.channel_zeros, 0, {}}, {}}, {}};
  }
};

template <>
struct Operands<cutlass::float_e4m3_t> {
  using Accumulator = float;
  // fp32 accumulation in the tensor cores' own (the products of 8-bit floats, summed without the periodic
  // promotion of the slow path): cuBLAS's FP8 default for inference too.
  using Schedule = cutlass::gemm::KernelTmaWarpSpecializedPingpongFP8FastAccum;
  using Corrected = fusion::Sm90AccFetch;  // no zero points
  static typename Corrected::Arguments corrected_arguments(const GemmSm90Args&) { return {}; }
};

template <typename Element, bool kGelu>
struct Gemm {
  using Ops = Operands<Element>;
  using DequantizedType = std::conditional_t<kGelu, float, Output>;  // rounded to bf16 after the GELU, or at once
  using Dequantized = Dequantize<DequantizedType, typename Ops::Corrected>;
  using Fusion = std::conditional_t<
      kGelu,
      fusion::Sm90EVT<fusion::Sm90Compute<cutlass::epilogue::thread::GELU_taylor, Output, float, kRound>, Dequantized>,
      Dequantized>;

  using Epilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape, ClusterShape,
      cutlass::epilogue::collective::EpilogueTileAuto, typename Ops::Accumulator, float,
      void, cutlass::layout::RowMajor, 8,     // no source C
      Output, cutlass::layout::RowMajor, 8,   // D
      cutlass::epilogue::TmaWarpSpecialized, Fusion>::CollectiveOp;

  using Mainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp,
      Element, cutlass::layout::RowMajor, 16,     // A [M, K]
      Element, cutlass::layout::ColumnMajor, 16,  // B [N, K] read as K x N column-major
      typename Ops::Accumulator, TileShape, ClusterShape,
      cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(sizeof(typename Epilogue::SharedStorage))>,
      typename Ops::Schedule>::CollectiveOp;

  using Kernel = cutlass::gemm::kernel::GemmUniversal<Shape<int, int, int, int>, Mainloop, Epilogue>;
  using Adapter = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;

  static typename Adapter::Arguments arguments(const GemmSm90Args& g) {
    const int m = static_cast<int>(g.m), n = static_cast<int>(g.n), k = static_cast<int>(g.k);
    using StrideA = typename Kernel::StrideA;
    using StrideB = typename Kernel::StrideB;
    using StrideD = typename Kernel::StrideD;
    const StrideA stride_a = cutlass::make_cute_packed_stride(StrideA{}, make_shape(m, k, 1));
    const StrideB stride_b = cutlass::make_cute_packed_stride(StrideB{}, make_shape(n, k, 1));
    const StrideD stride_d = cutlass::make_cute_packed_stride(StrideD{}, make_shape(m, n, 1));
    typename Adapter::Arguments args{cutlass::gemm::GemmUniversalMode::kGemm,
                                     {m, n, k, 1},
                                     {static_cast<const Element*>(g.a), stride_a, static_cast<const Element*>(g.b), stride_b},
                                     {{}, nullptr, stride_d, static_cast<Output*>(g.out), stride_d}};
    const auto dequantized =
        dequantize_arguments<DequantizedType, typename Ops::Corrected>(g, Ops::corrected_arguments(g));
    if constexpr (kGelu)
      args.epilogue.thread = {dequantized, {}};
    else
      args.epilogue.thread = dequantized;
    return args;
  }

  static size_t workspace_size(const GemmSm90Args& g) { return Adapter::get_workspace_size(arguments(g)); }

  static cudaError_t launch(const GemmSm90Args& g, void* workspace, cudaStream_t stream) {
    const typename Adapter::Arguments args = arguments(g);
    Adapter gemm;
    if (gemm.can_implement(args) != cutlass::Status::kSuccess) return cudaErrorNotSupported;
    if (gemm.initialize(args, workspace, stream) != cutlass::Status::kSuccess) return cudaErrorNotSupported;
    if (gemm.run(stream) != cutlass::Status::kSuccess)
      return cudaGetLastError() != cudaSuccess ? cudaErrorLaunchFailure : cudaErrorNotSupported;
    return cudaGetLastError();
  }
};

// The GELU and plain instantiations of one operand type.
template <typename Element>
size_t workspace_size(const GemmSm90Args& g) {
  return g.gelu ? Gemm<Element, true>::workspace_size(g) : Gemm<Element, false>::workspace_size(g);
}

template <typename Element>
cudaError_t launch(const GemmSm90Args& g, void* workspace, cudaStream_t stream) {
  return g.gelu ? Gemm<Element, true>::launch(g, workspace, stream) : Gemm<Element, false>::launch(g, workspace, stream);
}

}  // namespace ditgen::quant::sm90
