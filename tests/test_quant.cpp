// Quantization: hand-computed weight quantization at 4 and 8 bits, the MSE clip search, the activation
// quantizers and their calibration, golden tensors from scripts/reference/quant_reference.py, int4 packing,
// the integer GEMM (the AVX2 kernel at ragged shapes and extreme values) and linear against their references
// and the float linear, the QuantLinear module, and every refused input.
#include <array>
#include <cmath>
#include <map>
#include <optional>

#include "catch.h"
#include "ditgen/core/profile.h"
#include "ditgen/io/tensor_io.h"
#include "ditgen/quant/int4_pack.h"
#include "ditgen/quant/int8_gemm_avx2.h"
#include "ditgen/quant/int8_linear_cpu.h"
#include "ditgen/quant/int_gemm.h"
#include "ditgen/quant/quant_linear.h"
#include "ditgen/quant/quantizer.h"
#include "helpers.h"

using namespace ditgen;
using namespace ditgen::quant;
using ditgen::test::error_kind;
using ditgen::test::golden;
using ditgen::test::max_abs_diff;

namespace {

std::vector<int64_t> as_vector(const at::Tensor& t) {
  const at::Tensor flat = t.to(at::kLong).flatten().contiguous();
  return {flat.data_ptr<int64_t>(), flat.data_ptr<int64_t>() + flat.numel()};
}

double relative_error(const at::Tensor& value, const at::Tensor& truth) {
  return (value - truth).norm().item<double>() / truth.norm().item<double>();
}

const QuantSpec kSpecs[] = {
    {8, Symmetry::Asymmetric, ClipSearch::Mse},
    {8, Symmetry::Symmetric, ClipSearch::Mse},
    {4, Symmetry::Asymmetric, ClipSearch::Mse},
    {4, Symmetry::Symmetric, ClipSearch::Mse},
};

// The inputs of one layer of a small model: a few tokens around zero and some larger channels.
at::Tensor activations(int64_t tokens, int64_t width, uint64_t seed) {
  at::manual_seed(seed);
  return at::randn({tokens, width}) * (1 + 3 * at::rand({1, width}));  // [M, K]
}

}  // namespace

TEST_CASE("hand-computed per-channel weight quantization at 4 and 8 bits, symmetric and asymmetric", "[quant]") {
  struct Case {
    QuantSpec spec;
    std::vector<float> weight;  // [2, 4]
    std::vector<int64_t> values;
    std::vector<double> scales;
    std::vector<int64_t> zero_points;
  };
  const Case cases[] = {
      // Row 0 spans [-2.5, 5]: s = 7.5 / 15, z = -8 + 5. Row 1 is non-negative: the range widens to [0, 1].
      {{4, Symmetry::Asymmetric, ClipSearch::MinMax},
       {-2.5f, 0.f, 1.f, 5.f, 0.2f, 1.f, 0.6f, 0.f},
       {-8, -3, -1, 7, -5, 7, 1, -8},
       {0.5, 1.0 / 15},
       {-3, -8}},
      // Row 0: absmax 0.7 on -7..7 gives s = 0.1. Row 1 is all zero: scale 1, everything exact.
      {{4, Symmetry::Symmetric, ClipSearch::MinMax}, {-0.7f, 0.3f, 0.1f, 0.f, 0.f, 0.f, 0.f, 0.f},
       {-7, 3, 1, 0, 0, 0, 0, 0}, {0.1, 1.0}, {0, 0}},
      // Row 0 spans [-1, 4.1]: s = 5.1 / 255 = 0.02, z = -128 + 50. Row 1 is non-positive: z at the top.
      {{8, Symmetry::Asymmetric, ClipSearch::MinMax},
       {-1.f, 0.f, 0.5f, 4.1f, -0.3f, -0.1f, 0.f, -0.06f},
       {-128, -78, -53, 127, -128, 42, 127, 76},
       {0.02, 0.3 / 255},
       {-78, 127}},
      // Row 0: absmax 2.54 on -127..127 gives s = 0.02.
      {{8, Symmetry::Symmetric, ClipSearch::MinMax}, {-1.f, 0.5f, 2.54f, 0.f, 0.f, 1.f, -0.4f, 0.25f},
       {-50, 25, 127, 0, 0, 127, -51, 32}, {0.02, 1.0 / 127}, {0, 0}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.spec.bits, c.spec.symmetry == Symmetry::Symmetric);
    const at::Tensor weight = at::tensor(c.weight).reshape({2, 4});
    const QuantizedWeight q = quantize_weight(weight, c.spec);
    CHECK(q.values.scalar_type() == at::kChar);
    CHECK(q.zero_points.scalar_type() == at::kInt);
    CHECK(as_vector(q.values) == c.values);
    CHECK(as_vector(q.zero_points) == c.zero_points);
    CHECK(q.scales[0].item<double>() == Approx(c.scales[0]).epsilon(1e-6));
    CHECK(q.scales[1].item<double>() == Approx(c.scales[1]).epsilon(1e-6));
  }
}

TEST_CASE("dequantization is within half a step inside the clip range, and the fake-quant equals it", "[quant]") {
  at::manual_seed(11);
  const at::Tensor weight = at::randn({24, 40}) * at::rand({24, 1});  // [out, in], rows of different ranges
  for (QuantSpec spec : kSpecs) {
    CAPTURE(spec.bits, spec.symmetry == Symmetry::Symmetric);
    spec.clip = ClipSearch::MinMax;
    const QuantizedWeight q = quantize_weight(weight, spec);
    const IntegerGrid grid = integer_grid(spec.bits, spec.symmetry);
    CHECK(q.values.min().item<int64_t>() >= grid.min);
    CHECK(q.values.max().item<int64_t>() <= grid.max);
    const at::Tensor error = (dequantize(q) - weight).abs();  // [out, in]
    CHECK((error <= q.scales.unsqueeze(1) * (0.5 + 1e-5)).all().item<bool>());
    CHECK(max_abs_diff(fake_quantize_weight(weight, spec), dequantize(q)) == 0);
  }
}

TEST_CASE("the MSE clip search is never worse than min/max and clips an outlier", "[quant]") {
  at::manual_seed(5);
  for (QuantSpec spec : kSpecs) {
    CAPTURE(spec.bits, spec.symmetry == Symmetry::Symmetric);
    const at::Tensor weight = at::randn({16, 64});  // [out, in]
    QuantSpec minmax = spec;
    minmax.clip = ClipSearch::MinMax;
    const at::Tensor searched = lp_error(weight, fake_quantize_weight(weight, spec));  // [out]
    const at::Tensor plain = lp_error(weight, fake_quantize_weight(weight, minmax));   // [out]
    CHECK((searched <= plain).all().item<bool>());

  }

  // L_2.4 weighs a lone far outlier so much that the search keeps it at 8 bits (checked above: no worse);
  // at 4 bits a 5-sigma outlier costs the other values enough that clipping it wins.
  for (const QuantSpec& spec : {kSpecs[2], kSpecs[3]}) {
    CAPTURE(spec.symmetry == Symmetry::Symmetric);
    at::manual_seed(1);
    at::Tensor outlier = at::randn({1, 256});  // [1, in]
    outlier[0][7] = 5.0;
    QuantSpec minmax = spec;
    minmax.clip = ClipSearch::MinMax;
    const double searched = lp_error(outlier, fake_quantize_weight(outlier, spec)).item<double>();
    const double plain = lp_error(outlier, fake_quantize_weight(outlier, minmax)).item<double>();
    CHECK(searched < 0.95 * plain);
    CHECK(quantize_weight(outlier, spec).scales.item<double>() < quantize_weight(outlier, minmax).scales.item<double>());
  }
}

TEST_CASE("round_ste rounds forward and passes the gradient straight through", "[quant]") {
  const at::Tensor x = at::tensor({-1.6f, -0.4f, 0.49f, 2.51f}).requires_grad_(true);
  const at::Tensor y = round_ste(x);
  CHECK(as_vector(y.detach()) == std::vector<int64_t>{-2, 0, 0, 3});
  (y * at::tensor({1.f, 2.f, 3.f, 4.f})).sum().backward();
  CHECK(max_abs_diff(x.grad(), at::tensor({1.f, 2.f, 3.f, 4.f})) == 0);

  // Through the weight fake-quant: identity inside the clip range, zero where the search clipped (at 4 bits
  // it clips the tails of a Gaussian row).
  at::manual_seed(4);
  const at::Tensor weight = at::randn({1, 1024}).requires_grad_(true);  // [out, in]
  const QuantSpec spec{4, Symmetry::Asymmetric, ClipSearch::Mse};
  const at::Tensor fake = fake_quantize_weight(weight, spec);
  fake.sum().backward();
  const double half_step = quantize_weight(weight.detach(), spec).scales.item<double>() / 2;
  const at::Tensor clipped = (fake.detach() - weight.detach()).abs() > half_step * (1 + 1e-5);  // [out, in]
  CHECK(clipped.any().item<bool>());
  CHECK(at::equal(weight.grad(), at::where(clipped, 0.0f, 1.0f)));
}

TEST_CASE("dynamic per-token activations get one symmetric int8 scale per token", "[quant]") {
  const at::Tensor x = at::tensor({0.f, 1.27f, -0.64f, 0.f, 0.f, 0.f, 2.2f, -4.f, 1.f}).reshape({3, 3});
  const QuantizedActivation q = quantize_per_token(x);
  CHECK(as_vector(q.values) == std::vector<int64_t>{0, 127, -64, 0, 0, 0, 70, -127, 32});
  CHECK(q.scales[0].item<double>() == Approx(0.01));
  CHECK(q.scales[1].item<double>() == 1.0);  // an all-zero token
  CHECK(q.scales[2].item<double>() == Approx(4.0 / 127));
  CHECK(q.zero_point == 0);

  const at::Tensor tokens = activations(6, 32, 2).reshape({2, 3, 32});  // [B, N, K]
  const QuantizedActivation qt = quantize_per_token(tokens);
  CHECK(qt.values.sizes() == tokens.sizes());
  CHECK(qt.scales.sizes() == at::IntArrayRef({2, 3}));
  CHECK(max_abs_diff(dequantize(qt), fake_quantize_per_token(tokens)) == 0);
  CHECK(((dequantize(qt) - tokens).abs() <= qt.scales.unsqueeze(-1) * (0.5 + 1e-5)).all().item<bool>());
}

TEST_CASE("the CPU per-token loop equals the LibTorch per-token quantizer bit for bit", "[quant]") {
  at::manual_seed(21);
  // Ties at every half step (a row whose absmax is 127 has scale 1: 0.5, 1.5, -2.5 round to even), an all-zero
  // row, tiny and huge magnitudes, and random rows of ragged widths.
  at::Tensor ties = (at::arange(-127, 128).to(at::kFloat) + 0.5f).clamp_max(127.f).reshape({1, 255});
  std::vector<at::Tensor> inputs = {ties, at::zeros({2, 16}), at::randn({3, 7}) * 1e-30, at::randn({4, 5}) * 1e30,
                                    at::randn({1, 1}), activations(33, 65, 5), activations(24, 256, 6).reshape({2, 12, 256})};
  for (const at::Tensor& x : inputs) {
    CAPTURE(x.sizes());
    const QuantizedActivation got = quantize_per_token_cpu(x);
    const QuantizedActivation want = quantize_per_token_reference(x);
    CHECK(at::equal(got.values, want.values));
    CHECK(at::equal(got.scales, want.scales));
    CHECK(at::equal(got.sums, want.values.sum(-1, false, at::kInt)));
    CHECK(at::equal(quantize_per_token(x).values, want.values));  // quantize_per_token takes the loop here
  }
  CHECK(as_vector(quantize_per_token_cpu(ties).values.slice(1, 125, 130)) == std::vector<int64_t>{-2, 0, 0, 2, 2});
  // A strided input and an fp64 one go through quantize_per_token's conversion first.
  const at::Tensor wide = at::randn({6, 40});
  CHECK(at::equal(quantize_per_token(wide.t()).values, quantize_per_token_reference(wide.t()).values));
  CHECK(at::equal(quantize_per_token(wide.to(at::kDouble)).values, quantize_per_token_reference(wide).values));
  CHECK(error_kind([&] { quantize_per_token_cpu(wide.to(at::kDouble)); }) == ErrorKind::Usage);
}

TEST_CASE("a CPU profile lists LibTorch's ops and the integer linear's loops by self time", "[quant]") {
  at::manual_seed(22);
  const QuantizedWeight w = quantize_weight(at::randn({96, 64}), {8, Symmetry::Asymmetric, ClipSearch::Mse});
  const at::Tensor x = at::randn({40, 64}), float_x = at::randn({256, 512}), float_weight = at::randn({512, 512});
  const std::vector<ditgen::KernelTime> ops = ditgen::profile_kernels(
      [&] {
        dynamic_int8_linear(x, w, at::Tensor());
        at::linear(float_x, float_weight);
      },
      c10::Device(c10::kCPU), 50);
  std::map<std::string, ditgen::KernelTime> by_name;
  for (const auto& op : ops) by_name[op.name] = op;
  CHECK(by_name.count("ditgen::quantize_per_token_cpu") == 1);
  CHECK(by_name.count("ditgen::dequantize_product_cpu") == 1);
  REQUIRE(by_name.count("aten::linear") == 1);
  CHECK(by_name["aten::linear"].calls == 1);
  // Self times: aten::linear's own time excludes the GEMM inside it (a 256 x 512 x 512 product), listed apart.
  double gemm_ms = 0;
  for (const char* name : {"aten::mm", "aten::matmul", "aten::addmm"})
    if (by_name.count(name)) gemm_ms += by_name[name].ms;
  CHECK(gemm_ms > 0);
  CHECK(by_name["aten::linear"].ms < gemm_ms);
  for (size_t i = 1; i < ops.size(); ++i) CHECK(ops[i - 1].ms >= ops[i].ms);  // longest first
  for (const auto& op : ops) CHECK(op.ms >= 0);
}

TEST_CASE("the static activation quantizer's calibration covers every observed batch", "[quant]") {
  // Batches of growing range: the last one is four times the first.
  std::vector<at::Tensor> batches;
  for (int i = 1; i <= 4; ++i) batches.push_back(activations(32, 48, 20 + i) * i + 0.5 * i);  // [M, K]
  const at::Tensor all = at::cat(batches);

  for (Symmetry symmetry : {Symmetry::Asymmetric, Symmetry::Symmetric}) {
    CAPTURE(symmetry == Symmetry::Symmetric);
    StaticActivationQuantizer minmax({8, symmetry, ClipSearch::MinMax});
    StaticActivationQuantizer searched({8, symmetry, ClipSearch::Mse});
    StaticActivationQuantizer first_batch_only({8, symmetry, ClipSearch::Mse});
    for (const at::Tensor& batch : batches) {
      minmax.observe(batch);
      searched.observe(batch);
    }
    first_batch_only.observe(batches.front());
    minmax.finish();
    searched.finish();
    first_batch_only.finish();
    CHECK(searched.observed_min() == all.min().item<double>());
    CHECK(searched.observed_max() == all.max().item<double>());
    if (symmetry == Symmetry::Symmetric) CHECK(searched.zero_point() == 0);

    // Min/max covers every value of every batch to half a step; the search may clip a little, but the
    // last batch fares far better than with a range taken from the first batch alone.
    for (const at::Tensor& batch : batches) {
      CHECK(((minmax.fake_quantize(batch) - batch).abs() <= minmax.scale() * (0.5 + 1e-5)).all().item<bool>());
    }
    const at::Tensor last = batches.back();
    const double searched_error = relative_error(searched.fake_quantize(last), last);
    CHECK(searched_error < 0.02);
    CHECK(searched_error < 0.25 * relative_error(first_batch_only.fake_quantize(last), last));

    const QuantizedActivation q = searched.quantize(last);
    CHECK(q.zero_point == searched.zero_point());
    CHECK(max_abs_diff(dequantize(q), searched.fake_quantize(last)) == 0);
  }
}

TEST_CASE("the quantizers and the integer linear match the Python reference", "[quant][golden]") {
  const auto g = io::load_tensors(golden("quant.safetensors"));
  for (int bits : {4, 8}) {
    for (Symmetry symmetry : {Symmetry::Asymmetric, Symmetry::Symmetric}) {
      const std::string key = "w" + std::to_string(bits) + (symmetry == Symmetry::Symmetric ? "s" : "a");
      CAPTURE(key);
      const QuantizedWeight q = quantize_weight(g.at("weight"), {bits, symmetry, ClipSearch::Mse});
      CHECK(at::equal(q.values, g.at(key + ".values")));
      CHECK(at::equal(q.zero_points, g.at(key + ".zero_points")));
      CHECK(max_abs_diff(q.scales, g.at(key + ".scales")) <= 1e-6 * q.scales.max().item<double>());
    }
  }

  const QuantizedActivation x = quantize_per_token(g.at("x"));
  CHECK(at::equal(x.values, g.at("x.values")));
  CHECK(max_abs_diff(x.scales, g.at("x.scales")) <= 1e-6 * x.scales.max().item<double>());

  for (Symmetry symmetry : {Symmetry::Asymmetric, Symmetry::Symmetric}) {
    const std::string key = symmetry == Symmetry::Symmetric ? "statics" : "statica";
    CAPTURE(key);
    StaticActivationQuantizer calibrated({8, symmetry, ClipSearch::Mse});
    const at::Tensor batches = g.at("batches");  // [3, M, K]
    for (int64_t i = 0; i < batches.size(0); ++i) calibrated.observe(batches[i]);
    calibrated.finish();
    CHECK(calibrated.scale() == Approx(g.at(key + ".scale").item<double>()).epsilon(1e-6));
    CHECK(calibrated.zero_point() == g.at(key + ".zero_point").item<int64_t>());
  }

  const QuantizedWeight w8a = quantize_weight(g.at("weight"), {8, Symmetry::Asymmetric, ClipSearch::Mse});
  const at::Tensor expected = g.at("linear");  // [M, N]
  CHECK(max_abs_diff(dynamic_int8_linear(g.at("x"), w8a, g.at("bias")), expected) <=
        1e-5 * expected.abs().max().item<double>());
}

TEST_CASE("int4 packing puts the even column in the low nibble and round-trips exactly", "[quant]") {
  const at::Tensor values = at::tensor({-1, 7, -8, 0, 3, -5}, at::kChar).reshape({1, 6});
  const at::Tensor packed = pack_int4(values);
  CHECK(packed.scalar_type() == at::kByte);
  CHECK(as_vector(packed) == std::vector<int64_t>{0x7F, 0x08, 0xB3});
  CHECK(as_vector(unpack_int4(packed)) == as_vector(values));

  const at::Tensor all = at::randint(-8, 8, {9, 34}, at::kChar);  // [R, C]
  const at::Tensor round_trip = unpack_int4(pack_int4(all));
  CHECK(round_trip.scalar_type() == at::kChar);
  CHECK(at::equal(round_trip, all));

  // A 4-bit weight stored packed and loaded into a layer gives the same layer as the unpacked one.
  const QuantizedWeight q = quantize_weight(at::randn({12, 16}), {4, Symmetry::Asymmetric, ClipSearch::Mse});
  QuantizedWeight loaded = q;
  loaded.values = unpack_int4(pack_int4(q.values));
  const at::Tensor x = activations(5, 16, 9);
  CHECK(max_abs_diff(QuantLinear(loaded, at::Tensor(), ActivationMode::DynamicPerToken)(x),
                     QuantLinear(q, at::Tensor(), ActivationMode::DynamicPerToken)(x)) == 0);
}

TEST_CASE("the int8 GEMM is exact at every shape, small and odd ones included", "[quant]") {
  const std::vector<std::array<int64_t, 3>> shapes = {{3, 5, 7}, {16, 8, 8}, {17, 9, 13}, {64, 256, 96}};
  for (const auto& [m, k, n] : shapes) {
    CAPTURE(m, k, n);
    const at::Tensor a = at::randint(-128, 128, {m, k}, at::kChar);  // [M, K]
    const at::Tensor b = at::randint(-128, 128, {n, k}, at::kChar);  // [N, K]
    const at::Tensor product = int8_matmul(a, b);                    // [M, N]
    CHECK(product.scalar_type() == at::kInt);
    CHECK(at::equal(product, int8_matmul_reference(a, b)));
    CHECK(at::equal(product.to(at::kLong), at::matmul(a.to(at::kDouble), b.to(at::kDouble).t()).to(at::kLong)));
  }
}

TEST_CASE("the AVX2 int8 GEMM equals the int32 reference at ragged shapes and extreme values", "[quant]") {
  if (!cpu_has_avx2()) {
    ditgen::test::skip_test_case("this CPU has no AVX2; int8_matmul uses at::_int_mm here");
    return;
  }
  at::manual_seed(11);
  // Each operand filled with -128, with 127, with both alternating, or uniformly from the whole int8 range.
  const auto fill = [](int64_t rows, int64_t cols, int pattern) {
    switch (pattern) {
      case 0: return at::full({rows, cols}, -128, at::kChar);
      case 1: return at::full({rows, cols}, 127, at::kChar);
      case 2: return (at::arange(rows * cols).remainder(2) * 255 - 128).to(at::kChar).reshape({rows, cols});
      default: return at::randint(-128, 128, {rows, cols}, at::kChar);
    }
  };
  const int64_t sizes[] = {1, 3, 7, 17, 33, 65, 129};
  for (const int64_t m : sizes) {
    for (const int64_t n : sizes) {
      for (const int64_t k : sizes) {
        for (int pattern = 0; pattern < 4; ++pattern) {
          const at::Tensor a = fill(m, k, pattern);             // [M, K]
          const at::Tensor b = fill(n, k, (pattern + 1) % 4);   // [N, K]: every pairing of patterns
          CAPTURE(m, n, k, pattern);
          CHECK(at::equal(int8_gemm_avx2(a, b), int8_matmul_reference(a, b)));
        }
      }
    }
  }
  // The default model's layers at M = 512 tokens (K -> N), and a transposed (non-contiguous) weight.
  const std::vector<std::array<int64_t, 2>> layers = {{256, 768}, {256, 256}, {256, 640}, {640, 256}};
  for (const auto& [k, n] : layers) {
    CAPTURE(k, n);
    const at::Tensor a = at::randint(-128, 128, {512, k}, at::kChar);  // [M, K]
    const at::Tensor b = at::randint(-128, 128, {n, k}, at::kChar);    // [N, K]
    CHECK(at::equal(int8_gemm_avx2(a, b), int8_matmul_reference(a, b)));
  }
  const at::Tensor a = fill(40, 24, 3), b_transposed = fill(24, 9, 3);  // b = b_transposed^T is [9, 24]
  CHECK(at::equal(int8_gemm_avx2(a, b_transposed.t()), int8_matmul_reference(a, b_transposed.t())));
  // Empty operands: an empty sum is 0, and empty rows or columns give an empty product.
  CHECK(at::equal(int8_gemm_avx2(fill(4, 0, 3), fill(5, 0, 3)), at::zeros({4, 5}, at::kInt)));
  CHECK(int8_gemm_avx2(fill(0, 8, 3), fill(5, 8, 3)).sizes() == at::IntArrayRef({0, 5}));
  CHECK(int8_gemm_avx2(fill(4, 8, 3), fill(0, 8, 3)).sizes() == at::IntArrayRef({4, 0}));
}

TEST_CASE("the integer linear equals its fake-quant reference and is close to the float linear", "[quant]") {
  at::manual_seed(3);
  const at::Tensor weight = at::randn({96, 64}) / 8;  // [N, K]
  const at::Tensor bias = at::randn({96});            // [N]
  const at::Tensor x = activations(40, 64, 4).reshape({2, 20, 64});  // [B, T, K]
  const at::Tensor exact = at::linear(x, weight, bias);               // [B, T, N]
  double error_8bit = 0;
  for (const QuantSpec& spec : kSpecs) {
    CAPTURE(spec.bits, spec.symmetry == Symmetry::Symmetric);
    const QuantizedWeight q = quantize_weight(weight, spec);
    const at::Tensor y = dynamic_int8_linear(x, q, bias);
    const at::Tensor reference = dynamic_int8_linear_reference(x, q, bias);
    CHECK(y.sizes() == exact.sizes());
    CHECK(max_abs_diff(y, reference) <= 1e-5 * reference.abs().max().item<double>());
    const double error = relative_error(y, exact);
    if (spec.bits == 8) {
      CHECK(error < 0.02);
      error_8bit = std::max(error_8bit, error);
    } else {
      CHECK(error < 0.2);
      CHECK(error > error_8bit);
    }

    // Asymmetric static activations exercise the activation zero-point corrections.
    StaticActivationQuantizer calibrated({8, Symmetry::Asymmetric, ClipSearch::Mse});
    calibrated.observe(x + 1.0);
    calibrated.finish();
    REQUIRE(calibrated.zero_point() != 0);
    const QuantizedActivation xq = calibrated.quantize(x + 1.0);
    const at::Tensor static_reference = integer_linear_reference(xq, q, bias);
    CHECK(max_abs_diff(integer_linear(xq, q, bias), static_reference) <=
          1e-5 * static_reference.abs().max().item<double>());
  }
}

TEST_CASE("QuantLinear from a float Linear in each activation mode", "[quant]") {
  torch::nn::Linear linear(torch::nn::LinearOptions(48, 40));
  const at::Tensor x = activations(30, 48, 8).reshape({3, 10, 48});  // [B, T, K]
  const at::Tensor exact = linear(x).detach();                        // [B, T, N]
  const QuantSpec weight_spec{8, Symmetry::Asymmetric, ClipSearch::Mse};

  QuantLinear weight_only(linear, weight_spec, ActivationMode::None);
  CHECK(max_abs_diff(weight_only(x), weight_only->forward_reference(x)) == 0);
  CHECK(relative_error(weight_only(x), exact) < 0.01);

  QuantLinear dynamic(linear, weight_spec, ActivationMode::DynamicPerToken);
  CHECK(max_abs_diff(dynamic(x), dynamic->forward_reference(x)) <= 1e-5 * exact.abs().max().item<double>());
  CHECK(relative_error(dynamic(x), exact) < 0.02);

  QuantLinear calibrated(linear, weight_spec, ActivationMode::StaticPerTensor);
  CHECK(error_kind([&] { calibrated(x); }) == ErrorKind::Usage);  // not calibrated yet
  for (int64_t i = 0; i < 3; ++i) calibrated->observe(x[i]);
  calibrated->finish_calibration();
  CHECK(max_abs_diff(calibrated(x), calibrated->forward_reference(x)) <= 1e-5 * exact.abs().max().item<double>());
  CHECK(relative_error(calibrated(x), exact) < 0.03);

  // The weight lives in buffers: int8 values, a scale and zero point per output channel.
  const auto buffers = dynamic->named_buffers();
  CHECK(buffers["weight_values"].scalar_type() == at::kChar);
  CHECK(buffers["weight_scales"].sizes() == at::IntArrayRef({40}));
  CHECK(buffers["weight_zero_points"].sizes() == at::IntArrayRef({40}));
}

TEST_CASE("refused inputs throw the documented error kinds", "[quant][errors]") {
  const at::Tensor weight = at::randn({4, 8});
  const QuantSpec spec{};
  at::Tensor nan_weight = weight.clone();
  nan_weight[1][2] = std::nan("");
  at::Tensor inf_activation = at::randn({2, 8});
  inf_activation[0][0] = INFINITY;

  CHECK(error_kind([&] { quantize_weight(weight, {3, Symmetry::Asymmetric, ClipSearch::Mse}); }) == ErrorKind::Usage);
  CHECK(error_kind([&] { quantize_weight(weight, {16, Symmetry::Symmetric, ClipSearch::Mse}); }) == ErrorKind::Usage);
  CHECK(error_kind([&] { quantize_weight(at::empty({0, 8}), spec); }) == ErrorKind::Usage);
  CHECK(error_kind([&] { quantize_weight(at::ones({4, 8}, at::kInt), spec); }) == ErrorKind::Usage);
  CHECK(error_kind([&] { quantize_weight(at::randn({8}), spec); }) == ErrorKind::Usage);
  CHECK(error_kind([&] { quantize_weight(nan_weight, spec); }) == ErrorKind::Model);
  CHECK(error_kind([&] { fake_quantize_weight(nan_weight, spec); }) == ErrorKind::Model);
  CHECK(error_kind([&] { quantize_per_token(inf_activation); }) == ErrorKind::Usage);
  // NaN or -inf anywhere in a row, not only where the row's maximum is; the fake-quant path refuses the same.
  for (const double bad : {std::nan(""), -double(INFINITY)}) {
    at::Tensor x = at::randn({3, 8});
    x[2][5] = bad;
    CHECK(error_kind([&] { quantize_per_token(x); }) == ErrorKind::Usage);
    CHECK(error_kind([&] { fake_quantize_per_token(x); }) == ErrorKind::Usage);
  }
  CHECK(error_kind([&] { quantize_per_token(at::randint(0, 4, {2, 8})); }) == ErrorKind::Usage);

  StaticActivationQuantizer calibrated;
  CHECK(error_kind([&] { calibrated.finish(); }) == ErrorKind::Usage);
  CHECK(error_kind([&] { calibrated.observe(inf_activation); }) == ErrorKind::Usage);
  CHECK(error_kind([&] { calibrated.quantize(weight); }) == ErrorKind::Usage);
  CHECK(error_kind([&] { StaticActivationQuantizer two_bits({2, Symmetry::Symmetric, ClipSearch::Mse}); }) ==
        ErrorKind::Usage);

  CHECK(error_kind([&] { pack_int4(at::zeros({2, 3}, at::kChar)); }) == ErrorKind::Usage);
  CHECK(error_kind([&] { pack_int4(at::full({2, 4}, 8, at::kChar)); }) == ErrorKind::Usage);
  CHECK(error_kind([&] { pack_int4(at::zeros({2, 4}, at::kInt)); }) == ErrorKind::Usage);
  CHECK(error_kind([&] { unpack_int4(at::zeros({2, 4}, at::kChar)); }) == ErrorKind::Usage);

  const QuantizedWeight q = quantize_weight(weight, spec);
  CHECK(error_kind([&] { int8_matmul(at::zeros({2, 7}, at::kChar), q.values); }) == ErrorKind::Usage);
  CHECK(error_kind([&] { int8_matmul(at::zeros({2, 8}), q.values); }) == ErrorKind::Usage);
  CHECK(error_kind([&] { dynamic_int8_linear(at::randn({2, 7}), q, {}); }) == ErrorKind::Usage);
  CHECK(error_kind([&] { dynamic_int8_linear(at::randn({2, 8}), q, at::zeros({3})); }) == ErrorKind::Usage);
  // A part on another device (meta here; CUDA row sums beside CPU values in practice) is refused before any
  // kernel is handed its pointer.
  QuantizedActivation tokens = quantize_per_token(at::randn({2, 8}));
  tokens.sums = at::empty({2}, at::TensorOptions(at::kMeta).dtype(at::kInt));
  CHECK(error_kind([&] { integer_linear(tokens, q, {}); }) == ErrorKind::Usage);

  QuantLinear dynamic(weight, at::Tensor(), spec, ActivationMode::DynamicPerToken);
  CHECK(error_kind([&] { dynamic->observe(at::randn({2, 8})); }) == ErrorKind::Usage);
  QuantizedWeight truncated = q;
  truncated.scales = q.scales.slice(0, 0, 2);
  CHECK(error_kind([&] { QuantLinear(truncated, at::Tensor(), ActivationMode::None); }) == ErrorKind::Model);
}
