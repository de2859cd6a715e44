// The performance engine: fused adaLN kernels against their LibTorch references, the fused forward against
// the reference forward, captured sampler steps against eager ones. CPU runs the reference checks; the
// kernel and CUDA-graph checks run where a GPU is (docs/PERFORMANCE.md gives the command).
#include <c10/core/GradMode.h>
#ifdef DITGEN_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include "catch.h"
#include "ditgen/core/device.h"
#include "ditgen/cuda/adaln.h"
#include "ditgen/cuda/dispatch.h"
#include "ditgen/models/model_file.h"
#include "ditgen/nn/attention.h"
#include "ditgen/pipeline/generator.h"
#include "ditgen/sampling/sampler.h"
#include "helpers.h"

using namespace ditgen;
using ditgen::test::golden;
using ditgen::test::max_abs_diff;

namespace {

// LayerNorm (no affine, eps 1e-6) and modulation written out in float64.
at::Tensor norm_modulate_f64(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale) {
  at::Tensor v = x.to(at::kDouble);
  at::Tensor mean = v.mean(-1, true);
  at::Tensor var = (v - mean).pow(2).mean(-1, true);
  at::Tensor n = (v - mean) / at::sqrt(var + 1e-6);
  return n * (1 + scale.to(at::kDouble).unsqueeze(1)) + shift.to(at::kDouble).unsqueeze(1);  // [B, N, D]
}

// Six [B, D] adaLN chunks of one [B, 6D] tensor, strided as the model produces them.
std::vector<at::Tensor> adaln_chunks(int64_t B, int64_t D, const at::TensorOptions& options) {
  return at::randn({B, 6 * D}, options).chunk(6, 1);
}

double relative_to_max(const at::Tensor& a, const at::Tensor& expected) {
  return max_abs_diff(a, expected) / std::max(1.0, expected.abs().max().item<double>());
}

}  // namespace

TEST_CASE("adaLN references compute LayerNorm, modulation and the gated residual", "[engine]") {
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  at::Tensor x = at::randn({2, 5, 16}, f64) * 3 + 1, branch = at::randn({2, 5, 16}, f64);
  auto mod = adaln_chunks(2, 16, f64);
  CHECK(max_abs_diff(cuda::layer_norm_modulate_reference(x, mod[0], mod[1]), norm_modulate_f64(x, mod[0], mod[1])) <
        1e-12);
  auto [x_out, y] = cuda::gated_residual_layer_norm_modulate_reference(x, mod[2], branch, mod[3], mod[4]);
  at::Tensor expected_x = x + mod[2].unsqueeze(1) * branch;
  CHECK(max_abs_diff(x_out, expected_x) < 1e-12);
  CHECK(max_abs_diff(y, norm_modulate_f64(expected_x, mod[3], mod[4])) < 1e-12);
  CHECK(at::equal(cuda::gated_residual_reference(x, mod[2], branch), x_out));
  CHECK(at::equal(cuda::gated_residual(x, mod[2], branch), x_out));
  // Off CUDA the dispatching ops are the references, bit for bit.
  CHECK(at::equal(cuda::layer_norm_modulate(x, mod[0], mod[1]), cuda::layer_norm_modulate_reference(x, mod[0], mod[1])));
  CHECK_FALSE(cuda::adaln_kernel_supports(x.to(at::kFloat), mod[0].to(at::kFloat), mod[1].to(at::kFloat)));
}

TEST_CASE("fused adaLN kernels match their references", "[engine][cuda]") {
  if (test::no_cuda_device()) return;
  at::NoGradGuard no_grad;
  const auto gpu = at::TensorOptions().device(at::kCUDA);
  // fp32 rounds like the reference; half types round once where the reference rounds after every op.
  const std::vector<std::pair<at::ScalarType, double>> types{{at::kFloat, 2e-5}, {at::kBFloat16, 1.6e-2},
                                                             {at::kHalf, 2e-3}};
  for (auto [dtype, tol] : types) {
    for (int64_t D : {8, 64, 1152, 2048}) {
      const int64_t B = 3, N = 7;  // 21 rows: not a multiple of the 4 rows a block takes
      at::Tensor x = (at::randn({B, N, D}, gpu) * 2 + 0.5).to(dtype), branch = at::randn({B, N, D}, gpu).to(dtype);
      auto mod = adaln_chunks(B, D, gpu.dtype(dtype));
      INFO("dtype " << c10::toString(dtype) << ", D " << D);
      REQUIRE(cuda::adaln_kernel_supports(x, mod[0], mod[1]));
      at::Tensor y = cuda::layer_norm_modulate(x, mod[0], mod[1]);
      CHECK(y.scalar_type() == dtype);
      CHECK(relative_to_max(y.to(at::kDouble), norm_modulate_f64(x, mod[0], mod[1])) <= tol);

      auto [x_out, y2] = cuda::gated_residual_layer_norm_modulate(x, mod[2], branch, mod[3], mod[4]);
      at::Tensor expected_x = (x.to(at::kDouble) + mod[2].to(at::kDouble).unsqueeze(1) * branch.to(at::kDouble));
      CHECK(relative_to_max(x_out.to(at::kDouble), expected_x) <= tol);
      // The norm reads the stored (rounded) residual, as the reference does.
      CHECK(relative_to_max(y2.to(at::kDouble), norm_modulate_f64(x_out, mod[3], mod[4])) <= tol);
      CHECK_FALSE(at::isnan(y2).any().item<bool>());
      CHECK(at::equal(cuda::gated_residual(x, mod[2], branch), x_out));  // the same kernel without the norm
    }
  }
  // A width the 16-byte packs do not divide falls back to the reference.
  at::Tensor odd = at::randn({2, 3, 12}, gpu.dtype(at::kBFloat16));
  auto mod = adaln_chunks(2, 12, gpu.dtype(at::kBFloat16));
  CHECK_FALSE(cuda::adaln_kernel_supports(odd, mod[0], mod[1]));
  CHECK(at::equal(cuda::layer_norm_modulate(odd, mod[0], mod[1]),
                  cuda::layer_norm_modulate_reference(odd, mod[0], mod[1])));
}

TEST_CASE("the fused forward computes the reference forward", "[engine]") {
  LoadedModel m = load_model(golden("tiny_p2.model.safetensors"), at::kCPU, at::kFloat);
  at::NoGradGuard no_grad;
  at::Tensor x = at::randn({3, m.info.config.in_channels, 8, 8}), t = at::tensor({10, 500, 999}), y = at::tensor({0, 1, 2});
  at::Tensor reference = m.model->forward_reference(x, t, y);
  CHECK(at::equal(m.model->forward(x, t, y), reference));  // CPU: forward is the reference
  CHECK(relative_to_max(m.model->forward_fused(x, t, y), reference) < 1e-6);
  if (test::no_cuda_device(test::Skipping::Rest)) return;
  for (auto [dtype, tol] : std::vector<std::pair<at::ScalarType, double>>{{at::kFloat, 1e-5}, {at::kBFloat16, 3e-2}}) {
    INFO("dtype " << c10::toString(dtype));
    m.model->to(at::kCUDA, dtype);
    at::Tensor xg = x.to(at::kCUDA, dtype), tg = t.to(at::kCUDA), yg = y.to(at::kCUDA);
    at::Tensor fused = m.model->forward(xg, tg, yg).to(at::kCPU, at::kDouble);
    CHECK(relative_to_max(fused, reference.to(at::kDouble)) < tol);
    CHECK(relative_to_max(fused, m.model->forward_reference(xg, tg, yg).to(at::kCPU, at::kDouble)) < tol);
  }
}

TEST_CASE("a step with its scalars from a tensor equals the step", "[sampling][engine]") {
  DiTConfig learned, fixed, flow;
  fixed.learn_sigma = false;
  flow.objective = Objective::Flow;
  flow.learn_sigma = false;
  struct Case {
    sampling::SamplerOptions options;
    DiTConfig config;
  };
  const std::vector<Case> cases{{{"ddim", 10, 0.0}, learned}, {{"ddim", 10, 0.7}, learned},
                                {{"ddpm", 10, 0.0}, learned}, {{"ddpm", 10, 0.0}, fixed},
                                {{"euler", 10, 0.0}, flow}};
  for (const Case& c : cases) {
    auto sampler = sampling::make_sampler(c.options, c.config);
    for (int k : {0, 4, 9}) {
      INFO(c.options.name << " eta " << c.options.eta << " learn_sigma " << c.config.learn_sigma << " step " << k);
      at::Tensor x = at::randn({2, 4, 4, 4}), out = at::randn({2, c.config.out_channels(), 4, 4});
      at::Tensor noise = sampler->needs_noise() ? at::randn({2, 4, 4, 4}) : at::Tensor();
      at::Tensor scalars = at::tensor(sampler->step_scalars(k));
      CHECK(max_abs_diff(sampler->step_with(x, out, scalars, noise), sampler->step(x, out, k, noise)) < 1e-6);
    }
  }
}

TEST_CASE("on the GPU a preferred attention backend runs first and auto gives torch's order back", "[engine][cuda]") {
  if (test::no_cuda_device()) return;
  auto chosen = [] {
    return nn::attention_backend(2, 4, 256, 64, at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16));
  };
  // Before any SDPA choice of this process (ctest runs each case alone): torch then installs its own order
  // lazily, which must not replace the preference.
  nn::prefer_attention_backend("math");
  CHECK(chosen() == "math");
  for (const std::string name : {"flash", "efficient", "cudnn", "math"}) {
    nn::prefer_attention_backend(name);
    CHECK(chosen() == name);
  }
  nn::prefer_attention_backend("auto");
  const std::string by_torch = chosen();
  CHECK(by_torch != "math");
  nn::prefer_attention_backend("flash");
  nn::prefer_attention_backend("auto");
  CHECK(chosen() == by_torch);
}

TEST_CASE("captured (CUDA graph) sampler steps reproduce eager generation", "[engine][cuda]") {
  if (test::no_cuda_device()) return;
  Generator generator(load_model(golden("tiny_p2.model.safetensors"), at::kCPU, at::kFloat), at::kCUDA, at::kFloat);
  for (sampling::SamplerOptions sampler : {sampling::SamplerOptions{"ddim", 6, 0.0}, {"ddpm", 6, 0.0}}) {
    GenerationRequest r;
    r.labels = {1, 2, 3};
    r.seeds = {4, 5, 6};
    r.sampler = sampler;
    r.guidance = {2.0, 0};
    INFO(sampler.name);
    generator.set_cuda_graphs(false);
    at::Tensor eager = generator.generate(r).frames;
    generator.set_cuda_graphs(true);
    REQUIRE(generator.uses_cuda_graphs());
    at::Tensor first = generator.generate(r).frames;   // captures
    at::Tensor second = generator.generate(r).frames;  // replays the cached graph
    CHECK(relative_to_max(first, eager) < 1e-5);
    CHECK(at::equal(first, second));
    r.batch_size = 2;  // batches of 2 and 1: two more captures
    CHECK(relative_to_max(generator.generate(r).frames, eager) < 1e-5);
  }
}

TEST_CASE("out of GPU memory: the error names a batch that fits, auto-batch halves and goes on", "[engine][cuda]") {
#ifdef DITGEN_HAVE_CUDA
  if (test::no_cuda_device()) return;
  DiTConfig config = official_config("DiT-S/2");
  DiT model(config);
  model->normal_weights(0.02, 1);
  LoadedModel loaded{model, {}};
  loaded.info.config = config;
  Generator gen(loaded, at::kCUDA, at::kFloat);
  gen.set_cuda_graphs(false);  // eager: memory grows with the batch alone
  GenerationRequest r;
  for (int i = 0; i < 64; ++i) {
    r.labels.push_back(i % 10);
    r.seeds.push_back(100 + i);
  }
  r.sampler = {"ddim", 3, 0.0};
  r.guidance = {4.0, 0};
  r.batch_size = 8;
  const at::Device cuda(at::kCUDA, 0);
  const auto aggregate = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
  const double weights = c10::cuda::CUDACachingAllocator::getDeviceStats(0).allocated_bytes[aggregate].current;
  reset_peak_memory(cuda);
  const at::Tensor reference = gen.generate(r).frames;  // batches of 8
  const double per_8 = *peak_memory_gib(cuda) * (1 << 30) - weights;
  // The process may hold the weights and a little over three batches of 8: 64 does not fit, 16 does.
  const double total = static_cast<double>(at::cuda::getDeviceProperties(0)->totalGlobalMem);
  release_cached_memory(cuda);
  c10::cuda::CUDACachingAllocator::setMemoryFraction((weights + 3.2 * per_8 + (64 << 20)) / total, 0);
  r.batch_size = 64;
  const std::string message = test::error_message([&] { gen.generate(r); });
  CHECK(test::contains(message, "out of GPU memory generating a batch of 64 images at 32x32"));
  CHECK(test::error_kind([&] { gen.generate(r); }) == ErrorKind::Runtime);
  // The batch the message names runs under the same limit.
  const std::string flag = "use --batch-size ";
  REQUIRE(message.find(flag) != std::string::npos);
  const int fits = std::stoi(message.substr(message.find(flag) + flag.size()));
  CHECK((fits >= 1 && fits < 64));
  r.batch_size = fits;
  CHECK(max_abs_diff(gen.generate(r).frames, reference) <= 1e-4 * std::max(1.0, reference.abs().max().item<double>()));
  r.batch_size = 64;
  r.auto_batch = true;
  const at::Tensor halved = gen.generate(r).frames;  // 64 -> 32 -> 16 (or 8), every image its seed's
  CHECK(max_abs_diff(halved, reference) <= 1e-4 * std::max(1.0, reference.abs().max().item<double>()));
  // Captured steps need more memory (a pool per graph): running out while capturing ends in a result or a
  // ditgen::Error, and leaves no stream in capture mode: a normal captured run works afterwards.
  gen.set_cuda_graphs(true);
  try {
    const at::Tensor captured = gen.generate(r).frames;
    CHECK(max_abs_diff(captured, reference) <= 1e-4 * std::max(1.0, reference.abs().max().item<double>()));
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::Runtime);
  }
  c10::cuda::CUDACachingAllocator::setMemoryFraction(1.0, 0);
  r.batch_size = 8;
  CHECK(max_abs_diff(gen.generate(r).frames, reference) <= 1e-4 * std::max(1.0, reference.abs().max().item<double>()));
#else
  test::skip_test_case("built without CUDA");
#endif
}
