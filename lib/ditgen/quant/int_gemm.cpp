// The integer linear: the int8 GEMM (our AVX2 kernel, else at::_int_mm), zero-point corrections in int32,
// scales in float.
#include "ditgen/quant/int_gemm.h"

#include <algorithm>
#include <string>

#include "ditgen/quant/int8_gemm_avx2.h"

#ifdef DITGEN_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "ditgen/quant/int8_gemm_sm90.h"
#endif

namespace ditgen::quant {

namespace {

void require_matmul_operands(const at::Tensor& a, const at::Tensor& b) {
  require_int8(a, "the int8 GEMM's activations", 2);
  require_int8(b, "the int8 GEMM's weight", 2);
  if (a.size(1) != b.size(1)) {
    throw Error(ErrorKind::Usage, "int8 GEMM inner sizes differ: " + std::to_string(a.size(1)) + " and " +
                                      std::to_string(b.size(1)));
  }
}

void require_linear_operands(const QuantizedActivation& x, const QuantizedWeight& weight, const at::Tensor& bias) {
  if (x.values.dim() < 1 || x.values.size(-1) != weight.values.size(1)) {
    throw Error(ErrorKind::Usage, "the quantized linear's input width does not match its weight's " +
                                      std::to_string(weight.values.size(1)));
  }
  require_linear_bias(bias, weight.values.size(0));
}

// cuBLAS's int8 GEMM through at::_int_mm takes M > 16 and K, N multiples of 8: zero rows and columns pad
// the operands to that (they add nothing to any dot product) and are cut from the result.
at::Tensor int8_matmul_cublas(const at::Tensor& a, const at::Tensor& b) {
  const int64_t m = a.size(0), n = b.size(0), k = a.size(1);
  const int64_t padded_m = std::max<int64_t>(m, 17), padded_n = (n + 7) / 8 * 8, padded_k = (k + 7) / 8 * 8;
  if (padded_m == m && padded_n == n && padded_k == k) return at::_int_mm(a.contiguous(), b.t());  // [M, N]
  const at::Tensor a_padded = at::constant_pad_nd(a, {0, padded_k - k, 0, padded_m - m});  // [M', K']
  const at::Tensor b_padded = at::constant_pad_nd(b, {0, padded_k - k, 0, padded_n - n});  // [N', K']
  return at::_int_mm(a_padded, b_padded.t()).slice(0, 0, m).slice(1, 0, n).contiguous();   // [M, N]
}

#ifdef DITGEN_HAVE_CUDA
// The Hopper kernel computes the whole linear (int8_gemm_sm90.h): bf16 output, symmetric activations, its
// sizes, an sm_90 device, and a build that holds it.
bool sm90_linear_runs(const QuantizedActivation& x, const QuantizedWeight& weight, at::ScalarType out_dtype) {
  if (!x.values.is_cuda() || out_dtype != at::kBFloat16 || x.zero_point != 0 || !int8_gemm_sm90_built()) return false;
  const int64_t k = weight.values.size(1);
  if (!int8_gemm_sm90_takes(x.values.numel() / std::max<int64_t>(k, 1), weight.values.size(0), k)) return false;
  return at::cuda::getDeviceProperties(x.values.get_device())->major == 9;
}

at::Tensor sm90_linear(const QuantizedActivation& x, const QuantizedWeight& weight, const at::Tensor& bias,
                       bool gelu) {
  const int64_t k = weight.values.size(1), n = weight.values.size(0);
  const at::Tensor a = x.values.reshape({-1, k}).contiguous();  // [M, K] int8
  const at::Tensor b = weight.values.contiguous();              // [N, K] int8
  const at::Tensor token_scales = x.scales.reshape({-1}).to(at::kFloat).contiguous();  // [M]
  const at::Tensor channel_scales = weight.scales.to(at::kFloat).contiguous();         // [N]
  const bool asymmetric = weight.symmetry == Symmetry::Asymmetric;
  at::Tensor token_sums, channel_zeros;
  if (asymmetric) {
    token_sums = (x.sums.defined() ? x.sums.reshape({-1}) : a.sum(1, false, at::kInt)).contiguous();  // [M]
    channel_zeros = weight.zero_points.to(at::kInt).contiguous();                                     // [N]
  }
  const at::Tensor bias_f32 = bias.defined() ? bias.to(at::kFloat).contiguous() : at::Tensor();  // [N]
  std::vector<int64_t> out_sizes = x.values.sizes().vec();
  out_sizes.back() = n;
  at::Tensor out = at::empty(out_sizes, x.values.options().dtype(at::kBFloat16));  // [..., N]
  Int8GemmSm90Args args;
  args.a = a.data_ptr<int8_t>();
  args.b = b.data_ptr<int8_t>();
  args.token_scales = token_scales.data_ptr<float>();
  args.channel_scales = channel_scales.data_ptr<float>();
  args.token_sums = asymmetric ? token_sums.data_ptr<int32_t>() : nullptr;
  args.channel_zeros = asymmetric ? channel_zeros.data_ptr<int32_t>() : nullptr;
  args.bias = bias_f32.defined() ? bias_f32.data_ptr<float>() : nullptr;
  args.out = out.data_ptr();
  args.m = a.size(0);
  args.n = n;
  args.k = k;
  args.gelu = gelu;
  c10::cuda::CUDAGuard guard(a.device());
  const at::Tensor workspace = at::empty({static_cast<int64_t>(int8_gemm_sm90_workspace_size(args))},
                                         a.options().dtype(at::kByte));
  const cudaError_t err = launch_int8_gemm_sm90(args, workspace.data_ptr(), at::cuda::getCurrentCUDAStream());
  TORCH_CHECK(err == cudaSuccess, "the sm90 int8 GEMM failed: ", cudaGetErrorString(err));
  return out;
}
#endif

}  // namespace

at::Tensor int8_matmul(const at::Tensor& a, const at::Tensor& b) {
  require_matmul_operands(a, b);
  if (a.device() != b.device()) throw Error(ErrorKind::Usage, "the int8 GEMM's operands are on different devices");
  if (a.is_cuda()) return int8_matmul_cublas(a, b);  // [M, N] int32
  if (!a.is_cpu()) throw Error(ErrorKind::Usage, "the int8 GEMM runs on the CPU or CUDA");
  if (cpu_has_avx2()) return int8_gemm_avx2(a, b);  // [M, N] int32
  return at::_int_mm(a.contiguous(), b.t());         // [M, N] int32: exact, but a scalar loop
}

at::Tensor int8_matmul_reference(const at::Tensor& a, const at::Tensor& b) {
  require_matmul_operands(a, b);
  return at::matmul(a.to(at::kInt), b.to(at::kInt).t());  // [M, N] int32
}

at::Tensor integer_linear(const QuantizedActivation& x, const QuantizedWeight& weight, const at::Tensor& bias,
                          at::ScalarType out_dtype, bool gelu) {
  require_linear_operands(x, weight, bias);
#ifdef DITGEN_HAVE_CUDA
  if (sm90_linear_runs(x, weight, out_dtype)) return sm90_linear(x, weight, bias, gelu);  // [..., N]
#endif
  const int64_t in_features = weight.values.size(1);
  const at::Tensor x_rows = x.values.reshape({-1, in_features});  // [M, K] int8
  // In place where it can be: every fresh [M, N] tensor costs LibTorch's allocator new zeroed pages, which took
  // longer than the GEMM itself at the model's shapes.
  at::Tensor acc = int8_matmul(x_rows, weight.values);            // [M, N] int32
  const at::Tensor weight_zero = weight.zero_points.unsqueeze(0);  // [1, N] int32
  if (weight.symmetry == Symmetry::Asymmetric) {
    acc.addcmul_(x_rows.sum(1, /*keepdim=*/true, at::kInt), weight_zero, /*value=*/-1);  // [M, N]
  }
  if (x.zero_point != 0) {
    const at::Tensor weight_sums = weight.values.sum(1, /*keepdim=*/false, at::kInt).unsqueeze(0);  // [1, N]
    acc.sub_(x.zero_point * weight_sums - in_features * x.zero_point * weight_zero);              // [M, N]
  }
  const at::Tensor x_scales = x.scales.reshape({-1, 1});                // [M, 1]
  at::Tensor y = x_scales * weight.scales.unsqueeze(0);                 // [M, N] float
  y.mul_(acc);  // acc converted to float once, then scaled: the same rounding as acc.to(float) * scales
  if (bias.defined()) y.add_(bias.to(at::kFloat));
  if (gelu) y = at::gelu(y, "tanh");
  std::vector<int64_t> out_sizes = x.values.sizes().vec();
  out_sizes.back() = weight.values.size(0);
  return y.reshape(out_sizes).to(out_dtype);  // [..., N]
}

at::Tensor integer_linear_reference(const QuantizedActivation& x, const QuantizedWeight& weight,
                                    const at::Tensor& bias) {
  require_linear_operands(x, weight, bias);
  return at::linear(dequantize(x), dequantize(weight), bias.defined() ? bias.to(at::kFloat) : bias);  // [..., N]
}

at::Tensor dynamic_int8_linear(const at::Tensor& x, const QuantizedWeight& weight, const at::Tensor& bias) {
  return integer_linear(quantize_per_token(x), weight, bias, x.scalar_type());
}

at::Tensor dynamic_int8_linear_reference(const at::Tensor& x, const QuantizedWeight& weight, const at::Tensor& bias) {
  return at::linear(fake_quantize_per_token(x), dequantize(weight), bias.defined() ? bias.to(at::kFloat) : bias);
}

}  // namespace ditgen::quant
