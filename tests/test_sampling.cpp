// Samplers: respacing and schedules against the reference, oracle invariants, and whole sampling runs
// against golden runs of the PyTorch reference (same seeds, same RNG protocol).
#include <filesystem>
#include <limits>

#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>

#include "catch.h"
#include "ditgen/io/tensor_io.h"
#include "ditgen/pipeline/generator.h"
#include "ditgen/sampling/denoise.h"
#include "ditgen/sampling/gaussian_diffusion.h"
#include "helpers.h"

using namespace ditgen;
using ditgen::test::error_kind;
using ditgen::test::golden;
using ditgen::test::max_abs_diff;

namespace {

std::map<std::string, at::Tensor>& diffusion_golden() {
  static auto tensors = io::load_tensors(golden("diffusion.safetensors"));
  return tensors;
}

nlohmann::json diffusion_runs() {
  auto meta = io::SafetensorsFile::open(golden("diffusion.safetensors")).metadata();
  return nlohmann::json::parse(meta.at("ditgen.golden")).at("runs");
}

// One image of class 1 from seed 0.
GenerationRequest one_image(const sampling::SamplerOptions& sampler) {
  GenerationRequest r;
  r.labels = {1};
  r.seeds = {0};
  r.sampler = sampler;
  return r;
}

// `request` with `change` applied.
template <class F>
GenerationRequest changed(GenerationRequest request, F change) {
  change(request);
  return request;
}

}  // namespace

TEST_CASE("Respaced timesteps and betas match the official spacing", "[sampling][golden]") {
  auto& g = diffusion_golden();
  for (int k : {1, 10, 25, 250}) {
    auto steps = sampling::space_timesteps(1000, k);
    CHECK(at::equal(at::tensor(steps), g.at("timestep_map_" + std::to_string(k))));
  }
  CHECK(max_abs_diff(at::tensor(sampling::linear_betas(1000), at::kDouble), g.at("betas_1000")) < 1e-15);
  sampling::GaussianDiffusion d(1000, 10, sampling::VarianceType::LearnedRange);
  CHECK(max_abs_diff(at::tensor(d.betas(), at::kDouble), g.at("betas_10")) < 1e-12);
  CHECK(error_kind([] { sampling::space_timesteps(1000, 0); }) == ErrorKind::Usage);
  CHECK(error_kind([] { sampling::space_timesteps(1000, 1001); }) == ErrorKind::Usage);
}

TEST_CASE("Samplers driven by an exact oracle recover the data", "[sampling]") {
  at::manual_seed(3);
  const at::Tensor x0 = at::rand({2, 3, 4, 4}) * 2 - 1;
  sampling::NoiseSource gens{{at::detail::createCPUGenerator(1), at::detail::createCPUGenerator(2)}};
  DiTConfig config;  // eps, learned sigma, 1000 steps
  for (int steps : {10, 50}) {
    sampling::GaussianDiffusion d(1000, 1000, sampling::VarianceType::LearnedRange);
    auto sampler = sampling::make_sampler({"ddim", steps, 0.0}, config);
    const std::vector<double> betas = sampling::linear_betas(1000);
    // eps that is exactly consistent with x0 at the original timestep t.
    sampling::ModelFn oracle = [&](const at::Tensor& x, const at::Tensor& t, int) {
      const int64_t ti = static_cast<int64_t>(t[0].item<double>());
      double acp = 1;
      for (int64_t i = 0; i <= ti; ++i) acp *= 1 - betas[i];
      at::Tensor eps = (x - std::sqrt(acp) * x0) / std::sqrt(1 - acp);
      return at::cat({eps, at::zeros_like(eps)}, 1);
    };
    at::Tensor out = sampling::denoise(sampling::model_step(oracle, *sampler), *sampler, at::randn({2, 3, 4, 4}), gens);
    INFO("ddim " << steps << " steps, max abs error " << max_abs_diff(out, x0));
    CHECK(max_abs_diff(out, x0) < 1e-4);
  }
  DiTConfig flow;
  flow.objective = Objective::Flow;
  flow.learn_sigma = false;
  auto euler = sampling::make_sampler({"euler", 7, 0.0}, flow);
  sampling::ModelFn velocity = [&](const at::Tensor& x, const at::Tensor& t, int) {
    return (x - x0) / (t[0].item<double>() / 1000.0);  // the straight path's velocity
  };
  CHECK(max_abs_diff(sampling::denoise(sampling::model_step(velocity, *euler), *euler, at::randn({2, 3, 4, 4}), gens), x0) < 1e-5);
}

TEST_CASE("Sampling runs match the PyTorch reference", "[sampling][golden]") {
  auto& g = diffusion_golden();
  const nlohmann::json runs = diffusion_runs();
  for (const auto& [name, run] : runs.items()) {
    DYNAMIC_SECTION(name) {
      LoadedModel model = load_model(golden(run.at("model").get<std::string>()), at::kCPU, at::kFloat);
      Generator generator(std::move(model), at::kCPU, at::kFloat);
      GenerationRequest r;
      r.labels = run.at("labels").get<std::vector<int64_t>>();
      r.seeds = run.at("seeds").get<std::vector<uint64_t>>();
      r.sampler = {run.at("sampler").get<std::string>(), run.at("steps").get<int>(), run.value("eta", 0.0)};
      r.guidance = {run.at("cfg_scale").get<double>(), run.value("cfg_channels", 0)};
      // Our seeded initial noise is the reference's.
      sampling::NoiseSource gens;
      for (uint64_t s : r.seeds) gens.generators.push_back(at::detail::createCPUGenerator(s));
      const auto& shape = run.at("shape");
      CHECK(at::equal(gens.draw(std::vector<int64_t>{shape[1], shape[2], shape[3]}),
                      g.at(run.at("init_noise").get<std::string>())));
      at::Tensor out = generator.generate(r).frames.select(1, 0);
      const at::Tensor& expected = g.at(run.at("final").get<std::string>());
      INFO(name << " max abs error " << max_abs_diff(out, expected) << " at max |x| "
                << expected.abs().max().item<double>());
      CHECK(test::close_relative(out, expected, 2e-6));
    }
  }
}

TEST_CASE("An image does not depend on the batch it runs in", "[sampling]") {
  Generator generator(load_model(golden("tiny_p2.model.safetensors"), at::kCPU, at::kFloat), at::kCPU, at::kFloat);
  GenerationRequest r;
  r.labels = {1, 2, 3};
  r.seeds = {10, 11, 12};
  r.sampler = {"ddpm", 5, 0.0};
  r.guidance = {2.0, 0};
  at::Tensor together = generator.generate(r).frames;
  // Random weights make samples large (|x| ~ 100), so compare relative to their scale: matmuls of other
  // batch sizes round differently.
  const double tol = 1e-6 * together.abs().max().item<double>();
  r.batch_size = 1;
  at::Tensor alone = generator.generate(r).frames;
  CHECK(max_abs_diff(together, alone) < tol);
  r.seeds = {10, 99, 12};
  at::Tensor changed = generator.generate(r).frames;
  CHECK(max_abs_diff(changed[0], together[0]) < tol);
  CHECK(max_abs_diff(changed[1], together[1]) > 1000 * tol);
}

TEST_CASE("Requests that cannot run are refused before running", "[sampling][errors]") {
  Generator eps(load_model(golden("tiny_p2.model.safetensors"), at::kCPU, at::kFloat), at::kCPU, at::kFloat);
  Generator no_null(load_model(golden("tiny_p2_fixed.model.safetensors"), at::kCPU, at::kFloat), at::kCPU, at::kFloat);
  Generator flow(load_model(golden("tiny_p4_rect.model.safetensors"), at::kCPU, at::kFloat), at::kCPU, at::kFloat);
  const GenerationRequest r = one_image({"ddim", 10, 0.0});
  auto with = [&](auto change) { return changed(r, change); };
  CHECK_NOTHROW(eps.validate(r));
  CHECK(error_kind([&] { eps.validate(with([](auto& q) { q.sampler.steps = 0; })); }) == ErrorKind::Usage);
  CHECK(error_kind([&] { eps.validate(with([](auto& q) { q.sampler.name = "euler"; })); }) == ErrorKind::Usage);
  CHECK(error_kind([&] { flow.validate(r); }) == ErrorKind::Usage);  // ddim on a flow model
  CHECK(error_kind([&] { eps.validate(with([](auto& q) { q.height = 9; })); }) == ErrorKind::Usage);
  CHECK(error_kind([&] { eps.validate(with([](auto& q) { q.labels = {10}; })); }) == ErrorKind::Usage);
  CHECK(error_kind([&] { eps.validate(with([](auto& q) { q.guidance.channels = 5; })); }) == ErrorKind::Usage);
  CHECK(error_kind([&] { no_null.validate(with([](auto& q) { q.guidance.scale = 4; })); }) == ErrorKind::Usage);
  CHECK(error_kind([&] { eps.validate(with([](auto& q) { q.init_noise = at::zeros({1, 4, 8, 6}); })); }) ==
        ErrorKind::Input);
}

TEST_CASE("Cancelling stops before the next step", "[sampling]") {
  Generator generator(load_model(golden("tiny_p2.model.safetensors"), at::kCPU, at::kFloat), at::kCPU, at::kFloat);
  const GenerationRequest r = one_image({"ddim", 10, 0.0});
  int steps_seen = 0;
  auto result = generator.generate(r, [&](const Progress& p) { steps_seen = p.step; }, [&] { return steps_seen >= 3; });
  CHECK(result.cancelled);
  CHECK(steps_seen == 3);
  CHECK_FALSE(result.frames.defined());
}

TEST_CASE("Nonsense requests are refused before running: guidance, eta, initial noise, sizes", "[sampling][errors]") {
  Generator eps(load_model(golden("tiny_p2.model.safetensors"), at::kCPU, at::kFloat), at::kCPU, at::kFloat);  // 8x8
  const GenerationRequest r = one_image({"ddim", 2, 0.0});
  auto with = [&](auto change) { return changed(r, change); };
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  for (double scale : {nan, inf, -inf}) {
    INFO("cfg scale " << scale);
    CHECK(test::contains(test::error_message([&] { eps.validate(with([&](auto& q) { q.guidance.scale = scale; })); }),
                         "cfg scale must be a finite number"));
  }
  CHECK_NOTHROW(eps.validate(with([](auto& q) { q.sampler.eta = 1.0; })));
  for (double eta : {1.5, -0.1, nan}) {
    INFO("eta " << eta);
    CHECK(test::contains(test::error_message([&] { eps.validate(with([&](auto& q) { q.sampler.eta = eta; })); }),
                         "eta must be in 0..1"));
  }
  for (double bad : {nan, inf}) {
    at::Tensor noise = at::zeros({1, 4, 8, 8});
    noise[0][2][3][4] = bad;
    CHECK(error_kind([&] { eps.validate(with([&](auto& q) { q.init_noise = noise; })); }) == ErrorKind::Input);
  }
  // Checked before anything indexes it: the batch runner reads N from dimension 0.
  for (const at::Tensor& noise : {at::tensor(1.0), at::zeros({4, 8, 8})}) {
    CHECK(error_kind([&] { check_init_noise(noise); }) == ErrorKind::Input);
    CHECK(error_kind([&] { eps.validate(with([&](auto& q) { q.init_noise = noise; })); }) == ErrorKind::Input);
  }
  CHECK_NOTHROW(check_init_noise(at::zeros({1, 4, 8, 8})));
  CHECK(error_kind([&] { eps.validate(with([](auto& q) { q.width = -2; })); }) == ErrorKind::Usage);
}

TEST_CASE("A size the model was not trained at is refused unless the request allows it", "[sampling][errors]") {
  Generator eps(load_model(golden("tiny_p2.model.safetensors"), at::kCPU, at::kFloat), at::kCPU, at::kFloat);  // 8x8
  GenerationRequest r = one_image({"ddim", 2, 0.0});
  r.height = r.width = 8;  // the trained size, spelled out
  CHECK_NOTHROW(eps.validate(r));
  r.height = 16;
  const std::string message = test::error_message([&] { eps.generate(r); });
  CHECK(test::contains(message, "size 16x8 is not the 8x8 this model was trained at"));
  CHECK(error_kind([&] { eps.validate(r); }) == ErrorKind::Usage);
  r.height = 12;  // one the model cannot run at all says so, not that it is untrained
  r.width = 9;
  CHECK(test::contains(test::error_message([&] { eps.validate(r); }), "multiples of the patch size 2"));
  r.height = 16;
  r.width = 8;
  r.allow_untrained_size = true;
  const at::Tensor frames = eps.generate(r).frames;  // runs, with a warning
  CHECK(frames.sizes() == at::IntArrayRef({1, 1, 4, 16, 8}));
}

TEST_CASE("A resolved request builds its plan once and generates what the request does", "[sampling]") {
  Generator generator(load_model(golden("tiny_p2.model.safetensors"), at::kCPU, at::kFloat), at::kCPU, at::kFloat);
  GenerationRequest r;
  r.labels = {1, 2};
  r.seeds = {3, 4};
  r.sampler = {"ddpm", 3, 0.0};
  r.guidance = {2.0, 0};
  const ResolvedRequest resolved = generator.resolve(r);
  CHECK(resolved.height == 8);
  CHECK(resolved.width == 8);
  CHECK(resolved.steps() == 3);
  CHECK(resolved.sampler->needs_noise());
  CHECK(resolved.guided());
  CHECK(generator.step_gflops(resolved) == generator.step_gflops(r));
  CHECK(at::equal(generator.generate(resolved).frames, generator.generate(r).frames));
}

TEST_CASE("generate refuses NaN or infinite guidance, eta above 1 and untrained sizes with exit code 2",
          "[sampling][cli][errors]") {
  test::TempDir dir;
  const std::string model = test::make_tiny_model(dir);  // trained size 32x32
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases{
      {{"--cfg-scale", "nan"}, "cfg scale must be a finite number"},
      {{"--cfg-scale", "inf"}, "cfg scale must be a finite number"},
      {{"--eta", "2"}, "eta must be in 0..1"},
      {{"--eta", "nan"}, "eta must be in 0..1"},
      {{"--height", "64", "--width", "64"}, "not the 32x32 this model was trained at"},
  };
  for (const auto& [flags, message] : cases) {
    std::vector<std::string> args{"generate", "-m", model, "bag", "--steps", "2", "-o", "a.png", "--device", "cpu"};
    args.insert(args.end(), flags.begin(), flags.end());
    const test::CliResult r = test::run_cli(args, dir.path());
    INFO(flags.front() << " " << flags[1] << ": " << r.err);
    CHECK(r.exit_code == 2);
    CHECK(test::contains(r.err, message));
    CHECK_FALSE(std::filesystem::exists(dir / "a.png"));
  }
}
