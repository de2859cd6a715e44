// The fast paths of quantized layers against their references: the FP8 linear and its quantizers (CPU
// references), and on a GPU the CUDA kernels: per-token int8 and FP8 quantization, the adaLN kernel that
// quantizes its output, cuBLAS's int8 GEMM at any shape, the Hopper int8 GEMM with its dequantizing epilogue,
// _scaled_mm's FP8 linear, and whole quantized models on CUDA against the CPU.
#include <cmath>

#include <c10/core/InferenceMode.h>

#include "catch.h"
#include "ditgen/cuda/adaln.h"
#include "ditgen/models/model_file.h"
#include "ditgen/nn/lora.h"
#include "ditgen/quant/fp8_linear.h"
#include "ditgen/quant/gemm_sm90_launch.h"
#include "ditgen/quant/int_gemm.h"
#include "ditgen/quant/quant_linear.h"
#include "ditgen/quant/quantize_model.h"
#include "ditgen/quant/quantized_tensors.h"
#include "ditgen/quant/token_quant.h"
#include "ditgen/text/tokenizer.h"
#include "helpers.h"

#ifdef DITGEN_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

using namespace ditgen;
using namespace ditgen::quant;
using ditgen::test::error_kind;
using ditgen::test::golden;

namespace {

double relative_error(const at::Tensor& value, const at::Tensor& truth) {
  return (value.to(at::kDouble) - truth.to(at::kDouble)).norm().item<double>() / truth.to(at::kDouble).norm().item<double>();
}

// A few tokens around zero with some larger channels, as a layer's inputs look.
at::Tensor activations(int64_t tokens, int64_t width, uint64_t seed) {
  at::manual_seed(seed);
  return at::randn({tokens, width}) * (1 + 3 * at::rand({1, width}));  // [M, K]
}

bool on_hopper() {
#ifdef DITGEN_HAVE_CUDA
  return at::cuda::getCurrentDeviceProperties()->major == 9;
#else
  return false;
#endif
}

LoadedModel text_model() { return load_model(golden("tiny_text_dit.model.safetensors"), at::kCPU, at::kFloat); }

struct Inputs {
  at::Tensor x, t, y;
};
Inputs inputs_for(const DiTConfig& c) {
  at::Generator gen = at::detail::createCPUGenerator(5);
  const text::Tokenizer tok(c.text);
  return {at::randn({2, c.in_channels, c.input_height, c.input_width}, gen), at::tensor({500.0f, 40.0f}),
          at::stack({tok.padded(tok.encode(c.text.vocabulary[1]).ids), tok.padded(tok.encode("").ids)})};
}

at::Tensor run(LoadedModel& m, const Inputs& in, const at::Device& device, at::ScalarType dtype) {
  c10::InferenceMode guard;
  return m.model->forward(in.x.to(device, dtype), in.t.to(device), in.y.to(device)).to(at::kCPU, at::kFloat);
}

}  // namespace

TEST_CASE("FP8 weights and tokens: scales absmax / 448, e4m3 values within half a step", "[quant][fp8]") {
  const at::Tensor w = activations(24, 64, 1);  // [24, 64]
  const Fp8Weight q = quantize_weight_fp8(w);
  CHECK(q.values.scalar_type() == at::kFloat8_e4m3fn);
  CHECK(at::allclose(q.scales, w.abs().amax(1) / 448.0));
  const at::Tensor back = dequantize(q);
  // e4m3 keeps 3 mantissa bits: each value within 2^-4 of itself (relative), above the subnormals.
  const at::Tensor bound = w.abs() * (1.0 / 16) + q.scales.unsqueeze(1) * std::ldexp(1.0, -9);
  CHECK(((back - w).abs() <= bound).all().item<bool>());
  CHECK(at::allclose(back.abs().amax(1), w.abs().amax(1), 1e-6, 0));  // the row's maximum maps to 448, on the grid
  CHECK(at::equal(dequantize(quantize_weight_fp8(at::zeros({2, 16}))), at::zeros({2, 16})));

  const at::Tensor x = activations(10, 64, 2);
  const at::Tensor fx = fake_quantize_per_token_fp8(x);
  CHECK(relative_error(fx, x) < 0.04);
  CHECK(at::allclose(fx.abs().amax(1), x.abs().amax(1), 1e-6, 0));

  // The linear (its reference on the CPU) is within FP8's error of the float linear.
  const at::Tensor bias = at::randn({24});
  const at::Tensor y = fp8_linear(x, q, bias);
  CHECK(at::equal(y, fp8_linear_reference(x, q, bias)));
  CHECK(relative_error(y, at::linear(x, w, bias)) < 0.06);
  QuantLinear layer(q, bias);
  CHECK(layer->is_fp8());
  CHECK(at::equal(layer->forward(x), y));
  CHECK(error_kind([&] { layer->quantized_weight(); }) == ErrorKind::Usage);
  CHECK(error_kind([&] { quantize_weight_fp8(at::randn({4})); }) == ErrorKind::Usage);
  at::Tensor bad = w.clone();
  bad[0][0] = NAN;
  CHECK(error_kind([&] { quantize_weight_fp8(bad); }) == ErrorKind::Model);
  CHECK(error_kind([&] { QuantLinear(Fp8Weight{q.values, q.scales.slice(0, 0, 3)}, bias); }) == ErrorKind::Model);
}

TEST_CASE("an FP8 model stays near the float model and is never written to a file", "[quant][fp8]") {
  LoadedModel float_model = text_model();
  LoadedModel fp8 = text_model();
  const ModelQuantization q = quantize_model_fp8(fp8.model);
  CHECK(q.fp8);
  CHECK(q.label() == "FP8");
  CHECK(q.layers.size() == quantizable_layers(fp8.model).size());
  const Inputs in = inputs_for(float_model.info.config);
  const double error = relative_error(run(fp8, in, at::kCPU, at::kFloat), run(float_model, in, at::kCPU, at::kFloat));
  CHECK(error > 0);
  CHECK(error < 0.02);  // measured 4.3e-3 (W8A8: 5.9e-4)
  CHECK(error_kind([&] { quantized_layer_tensors(fp8.model, q); }) == ErrorKind::Usage);
  CHECK(error_kind([&] { quantize_model_fp8(fp8.model); }) == ErrorKind::Usage);  // already quantized
}

TEST_CASE("an integer layer takes the adaLN op's quantized tokens and gives what it gives on their floats",
          "[quant]") {
  at::manual_seed(9);
  const at::Tensor x = at::randn({2, 5, 64}), shift = at::randn({2, 64}) * 0.3, scale = at::randn({2, 64}) * 0.3;
  const at::Tensor y = cuda::layer_norm_modulate(x, shift, scale);  // [2, 5, 64], the reference on the CPU
  const QuantizedActivation q = cuda::layer_norm_modulate_quantized(x, shift, scale);
  CHECK(at::equal(q.values, quantize_per_token(y).values));
  nn::LoRALinear dynamic(64, 96), weight_only(64, 96);
  dynamic->quantize(QuantLinear(dynamic->weight, dynamic->bias, QuantSpec{}, ActivationMode::DynamicPerToken));
  weight_only->quantize(QuantLinear(weight_only->weight, weight_only->bias, QuantSpec{}, ActivationMode::None));
  const nn::LinearInput tokens{at::Tensor(), q, at::kFloat};
  CHECK(dynamic->takes_quantized_tokens());
  CHECK(at::equal(dynamic->forward_input(tokens), dynamic->forward(y)));
  CHECK(at::equal(dynamic->forward_input(nn::LinearInput{y}), dynamic->forward(y)));
  CHECK(!weight_only->takes_quantized_tokens());
  CHECK(error_kind([&] { weight_only->forward_input(tokens); }) == ErrorKind::Usage);
  dynamic->quantized->use_reference(true);
  CHECK(!dynamic->takes_quantized_tokens());
}

TEST_CASE("CUDA: per-token int8 and FP8 kernels equal the LibTorch quantizers", "[quant][cuda]") {
  if (test::no_cuda_device()) return;
  c10::InferenceMode inference;  // the kernels serve inference (no autograd)
  for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
    for (const int64_t width : {16, 48, 1152, 4608}) {
      CAPTURE(dtype, width);
      at::Tensor x = activations(37, width, 3).to(dtype);
      x[5].zero_();  // an all-zero token: scale 1, values 0
      const at::Tensor xg = x.to(at::kCUDA);
      REQUIRE(token_quant_runs_kernel(xg));
      const QuantizedActivation got = quantize_per_token(xg);  // the kernel on CUDA
      const QuantizedActivation want = quantize_per_token_reference(x);  // LibTorch ops on the CPU
      CHECK(at::equal(got.values.cpu(), want.values));
      CHECK(at::equal(got.scales.cpu(), want.scales));
      CHECK(at::equal(got.sums.cpu(), want.values.sum(1, false, at::kInt)));
      const Fp8Tokens fp8 = quantize_per_token_fp8_kernel(xg);
      const at::Tensor fp8_back = fp8.values.cpu().to(at::kFloat) * fp8.scales.cpu().unsqueeze(1);
      CHECK(at::equal(fp8_back, fake_quantize_per_token_fp8(x)));
    }
  }
  CHECK(!token_quant_runs_kernel(at::randn({4, 10}, at::kCUDA)));  // rows not of 16-byte multiples
  const at::Tensor strided = at::randn({16, 8}, at::kCUDA).t();   // [8, 16], copied into rows first
  CHECK(at::equal(quantize_per_token(strided).values.cpu(), quantize_per_token_reference(strided.cpu()).values));
  CHECK(error_kind([&] { quantize_per_token_fp8_kernel(at::randn({4, 16})); }) == ErrorKind::Usage);  // CPU
}

TEST_CASE("CUDA: the adaLN kernel's quantized output equals quantizing its float output", "[quant][cuda]") {
  if (test::no_cuda_device()) return;
  c10::InferenceMode inference;  // the kernels serve inference (no autograd)
  for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    CAPTURE(dtype);
    const auto o = at::TensorOptions(at::kCUDA).dtype(dtype);
    at::manual_seed(4);
    const at::Tensor x = at::randn({2, 33, 256}, o), branch = at::randn({2, 33, 256}, o);
    const at::Tensor mod = at::randn({2, 3 * 256}, o) * 0.3;
    const auto chunks = mod.chunk(3, 1);  // gate, shift, scale: strided rows
    const auto [h, y] = cuda::gated_residual_layer_norm_modulate(x, chunks[0], branch, chunks[1], chunks[2]);
    const auto [h_q, y_q] = cuda::gated_residual_layer_norm_modulate_quantized(x, chunks[0], branch, chunks[1], chunks[2]);
    CHECK(at::equal(h_q, h));
    const QuantizedActivation want = quantize_per_token_reference(y.cpu());
    CHECK(at::equal(y_q.values.cpu(), want.values));
    CHECK(at::equal(y_q.scales.cpu(), want.scales));
    CHECK(at::equal(y_q.sums.cpu(), want.values.sum(-1, false, at::kInt)));
    const QuantizedActivation plain = cuda::layer_norm_modulate_quantized(x, chunks[1], chunks[2]);
    CHECK(at::equal(plain.values.cpu(), quantize_per_token_reference(cuda::layer_norm_modulate(x, chunks[1], chunks[2]).cpu()).values));
  }
}

TEST_CASE("CUDA: the int8 GEMM is exact at every shape (cuBLAS, zero-padded)", "[quant][cuda]") {
  if (test::no_cuda_device()) return;
  c10::InferenceMode inference;  // the kernels serve inference (no autograd)
  for (const auto& [m, k, n] : std::vector<std::array<int64_t, 3>>{{1, 5, 3}, {16, 8, 8}, {17, 13, 9}, {300, 1152, 3456}}) {
    CAPTURE(m, k, n);
    const at::Tensor a = at::randint(-128, 128, {m, k}, at::kChar), b = at::randint(-128, 128, {n, k}, at::kChar);
    CHECK(at::equal(int8_matmul(a.cuda(), b.cuda()).cpu(), int8_matmul_reference(a, b)));
  }
  CHECK(error_kind([&] { int8_matmul(at::zeros({2, 8}, at::kChar).cuda(), at::zeros({3, 8}, at::kChar)); }) ==
        ErrorKind::Usage);
}

TEST_CASE("CUDA: the integer linear (Hopper kernel in bf16, else cuBLAS) equals the CPU integer linear",
          "[quant][cuda]") {
  if (test::no_cuda_device()) return;
  c10::InferenceMode inference;  // the kernels serve inference (no autograd)
  if (on_hopper()) CHECK(gemm_sm90_runs(at::Device(at::kCUDA), 64, 64, 64));  // an H100 build must hold the kernel
  for (const auto& [m, k, n] : std::vector<std::array<int64_t, 3>>{{1, 64, 64}, {77, 256, 768}, {512, 1152, 3456},
                                                                   {300, 4608, 1152}}) {
    for (const Symmetry symmetry : {Symmetry::Symmetric, Symmetry::Asymmetric}) {
      for (const bool with_bias : {true, false}) {
        CAPTURE(m, k, n, symmetry == Symmetry::Symmetric, with_bias);
        const QuantizedWeight w = quantize_weight(activations(n, k, 5) * 0.05, {8, symmetry, ClipSearch::Mse});
        const at::Tensor bias = with_bias ? at::randn({n}) : at::Tensor();
        const QuantizedActivation x = quantize_per_token(activations(m, k, 6));
        const at::Tensor want = integer_linear(x, w, bias);  // float32 on the CPU
        QuantizedWeight wg = w;
        wg.values = w.values.cuda(), wg.scales = w.scales.cuda(), wg.zero_points = w.zero_points.cuda();
        QuantizedActivation xg = x;
        xg.values = x.values.cuda(), xg.scales = x.scales.cuda();
        if (symmetry == Symmetry::Asymmetric && with_bias) {  // the CPU quantizer's row sums, left on the CPU
          CHECK(error_kind([&] { integer_linear(xg, wg, at::Tensor(), at::kBFloat16); }) == ErrorKind::Usage);
        }
        xg.sums = x.sums.cuda();
        const at::Tensor bias_g = with_bias ? bias.cuda() : at::Tensor();
        // bf16 output: the Hopper kernel rounds the fp32 result once; within one bf16 step of it.
        const at::Tensor bf16 = integer_linear(xg, wg, bias_g, at::kBFloat16).cpu().to(at::kFloat);
        CHECK(((bf16 - want).abs() <= want.abs() * (1.0 / 256) + 1e-5).all().item<bool>());
        // With GELU (the MLP's first layer) in the epilogue: its tanh is the hardware's approximation.
        const at::Tensor gelu = integer_linear(xg, wg, bias_g, at::kBFloat16, /*gelu=*/true).cpu().to(at::kFloat);
        const at::Tensor want_gelu = at::gelu(want, "tanh");
        CHECK(((gelu - want_gelu).abs() <= want_gelu.abs() * (1.0 / 128) + 2e-3).all().item<bool>());
        // fp32 output: cuBLAS's int32 product and the same float epilogue as the CPU.
        const at::Tensor f32 = integer_linear(xg, wg, bias_g, at::kFloat).cpu();
        CHECK(at::allclose(f32, want, 1e-6, 1e-5));
      }
    }
  }
}

TEST_CASE("CUDA: the FP8 linear (Hopper kernel, else _scaled_mm) is near its reference, GELU too",
          "[quant][cuda][fp8]") {
  if (test::no_cuda_device()) return;
  c10::InferenceMode inference;  // the kernels serve inference (no autograd)
  if (on_hopper()) CHECK(gemm_sm90_runs(at::Device(at::kCUDA), 64, 64, 64));
  for (const auto& [m, k, n] : std::vector<std::array<int64_t, 3>>{{300, 256, 768}, {77, 1152, 4608}, {512, 4608, 1152}}) {
    for (const bool with_bias : {true, false}) {
      CAPTURE(m, k, n, with_bias);
      const at::Tensor w = activations(n, k, 7) * 0.05, x = activations(m, k, 8);
      const at::Tensor bias = with_bias ? at::randn({n}) : at::Tensor();
      const Fp8Weight q = quantize_weight_fp8(w);
      const Fp8Weight qg{q.values.cuda(), q.scales.cuda()};
      const at::Tensor x_bf16 = x.to(at::kBFloat16);
      const at::Tensor want = fp8_linear_reference(x_bf16.to(at::kFloat), q, bias);  // the same e4m3 tokens
      const at::Tensor bias_g = with_bias ? bias.cuda() : at::Tensor();
      const at::Tensor got = fp8_linear(x_bf16.cuda(), qg, bias_g).cpu().to(at::kFloat);
      // The same FP8 operands; the sums' order and the bf16 output differ.
      CHECK(relative_error(got, want) < 5e-3);
      const at::Tensor gelu = fp8_linear(x_bf16.cuda(), qg, bias_g, /*gelu=*/true).cpu().to(at::kFloat);
      CHECK(relative_error(gelu, at::gelu(want, "tanh")) < 1e-2);
    }
  }
}

TEST_CASE("CUDA: quantized models on the GPU match the CPU: W8A8 and W4A8 in fp32 and bf16, FP8 in bf16",
          "[quant][cuda][quant_model]") {
  if (test::no_cuda_device()) return;
  c10::InferenceMode inference;  // the kernels serve inference (no autograd)
  LoadedModel float_model = text_model();
  const Inputs in = inputs_for(float_model.info.config);
  const at::Tensor float_out = run(float_model, in, at::kCPU, at::kFloat);
  for (const int bits : {8, 4}) {
    CAPTURE(bits);
    LoadedModel m = text_model();
    quantize_model(m.model, bits, Symmetry::Asymmetric, ActivationMode::DynamicPerToken);
    const at::Tensor cpu = run(m, in, at::kCPU, at::kFloat);
    m.model->to(at::kCUDA);
    CHECK(relative_error(run(m, in, at::kCUDA, at::kFloat), cpu) < 1e-4);
    m.model->to(at::kBFloat16);
    const double bf16_error = relative_error(run(m, in, at::kCUDA, at::kBFloat16), cpu);
    CHECK(bf16_error < 0.02);
    WARN("W" << bits << "A8 on CUDA in bf16 against the CPU in fp32: relative error " << bf16_error);
  }
  LoadedModel fp8 = text_model();
  fp8.model->to(at::kCUDA);
  quantize_model_fp8(fp8.model);
  fp8.model->to(at::kBFloat16);
  CHECK(relative_error(run(fp8, in, at::kCUDA, at::kBFloat16), float_out) < 0.06);
}
