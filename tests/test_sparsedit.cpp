// SparseDiT: the Poolingformer and sparse-dense token modules against golden tensors from
// scripts/make_golden_sparsedit.py (our PyTorch reference, scripts/reference/sparsedit_reference.py), the
// dense-to-sparse conversion, the density schedule, FLOPs, generation and the CLI.
#include <cmath>
#include <fstream>
#include <functional>

#include <nlohmann/json.hpp>

#include "catch.h"
#include "ditgen/cuda/token_grid.h"
#include "ditgen/io/png.h"
#include "ditgen/io/tensor_io.h"
#include "ditgen/models/conversions.h"
#include "ditgen/models/cost.h"
#include "ditgen/models/model_file.h"
#include "ditgen/pipeline/generator.h"
#include "ditgen/pipeline/outputs.h"
#include "ditgen/schedule/compute_schedule.h"
#include "helpers.h"

using namespace ditgen;
using ditgen::test::golden;
using ditgen::test::max_abs_diff;

namespace {

// The golden layout: 1 Poolingformer, 2 modules [1, 1, 1, 1], 1 top block, grids 2..5 on a 6x6 token grid.
SparseConfig golden_layout() { return {1, 2, 1, 1, 2, 5}; }

double tolerance(const at::Tensor& reference) { return 1e-5 * std::max(1.0, reference.abs().max().item<double>()); }

// [B, C, H, W] image -> [B, H*W, C] tokens.
at::Tensor as_tokens(const at::Tensor& image) {
  return image.permute({0, 2, 3, 1}).reshape({image.size(0), image.size(2) * image.size(3), image.size(1)});
}

// A pixel model spec's config (the golden models make latents): fmnist-tiny's shape with 1 Poolingformer and
// 1 module, an 8x8 token grid.
const char* const kTinySparseConfig =
    "config:\n  depth: 4\n  hidden_size: 32\n  num_heads: 2\n  patch_size: 2\n  in_channels: 1\n"
    "  input_size: [16, 16]\n  num_classes: 10\n  image_space: pixel\n"
    "  sparse: {pooling_blocks: 1, modules: 1, groups: [1, 1, 1, 0], min_grid: 2, max_grid: 5}\n";

// The message of the c10::Error (a TORCH_CHECK) that `f` throws, or "" when it throws none.
std::string torch_check_message(const std::function<void()>& f) {
  try {
    f();
  } catch (const c10::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("token pooling and upsampling keep torch's adaptive-average and nearest semantics", "[sparsedit][golden]") {
  auto g = io::load_tensors(golden("sparsedit.safetensors"));
  const at::Tensor in = g.at("pool_in");  // [2, 5, 7, 3]: a 7x3 grid of 5-wide tokens (uneven bins for S = 3)
  const at::Tensor pooled = cuda::pool_tokens(as_tokens(in), 7, 3, 3);                // [2, 9, 5]
  CHECK(max_abs_diff(pooled, as_tokens(g.at("adaptive_pool_3"))) <= 1e-6);
  const at::Tensor up = cuda::upsample_tokens_reference(pooled, 3, 5, 7);            // [2, 35, 5]
  CHECK(max_abs_diff(up, as_tokens(g.at("nearest_up"))) <= 1e-6);
  at::Tensor dense = at::randn({2, 35, 5});                                          // [2, 35, 5]
  const at::Tensor expected = dense + up;
  CHECK(max_abs_diff(cuda::add_upsampled_tokens_(dense, pooled, 3, 5, 7), expected) <= 1e-6);
  CHECK(max_abs_diff(dense, expected) <= 1e-6);  // in place
  // Shapes that do not match the grids are refused before anything is read (the kernels index by them).
  auto refused = [](const std::function<void()>& f, const std::string& why) {
    return test::contains(torch_check_message(f), why);
  };
  CHECK(refused([&] { cuda::pool_tokens(as_tokens(in), 7, 4, 3); }, "must be [B, 28, D]"));
  CHECK(refused([&] { cuda::pool_tokens(as_tokens(in), 7, 3, 4); }, "does not fit"));
  CHECK(refused([&] { cuda::add_upsampled_tokens_(dense, pooled, 2, 5, 7); }, "must be [B, 4, D]"));
  CHECK(refused([&] { cuda::add_upsampled_tokens_(dense, pooled.narrow(2, 0, 4), 3, 5, 7); }, "do not match"));
}

TEST_CASE("a sparse model matches the PyTorch reference at every grid, square and not", "[sparsedit][golden]") {
  LoadedModel sparse = load_model(golden("tiny_sparse.model.safetensors"), at::kCPU, at::kFloat);
  const SparseConfig& q = sparse.info.config.sparse;
  CHECK((q.pooling_blocks == 1 && q.modules == 2 && q.semantic == 1 && q.dense == 1 && q.min_grid == 2 &&
         q.max_grid == 5 && sparse.info.config.top_blocks() == 1));
  auto g = io::load_tensors(golden("sparsedit.safetensors"));
  at::NoGradGuard no_grad;
  for (int S : {2, 3, 4, 5}) {
    INFO("grid " << S);
    const at::Tensor expected = g.at("out_sparse_" + std::to_string(S));
    const at::Tensor out = sparse.model->forward(g.at("x"), g.at("t"), g.at("y"), 0, S);
    CHECK(max_abs_diff(out, expected) <= tolerance(expected));
  }
  const at::Tensor rect = g.at("out_sparse_rect_3");  // a 6x8 token grid pooled to 3x3
  CHECK(max_abs_diff(sparse.model->forward(g.at("x_rect"), g.at("t"), g.at("y"), 0, 3), rect) <= tolerance(rect));
  // The default grid is the densest trained one; one larger than the token grid is refused.
  CHECK(at::equal(sparse.model->forward(g.at("x"), g.at("t"), g.at("y")),
                  sparse.model->forward(g.at("x"), g.at("t"), g.at("y"), 0, 5)));
  CHECK(test::contains(torch_check_message([&] { sparse.model->forward(g.at("x"), g.at("t"), g.at("y"), 0, 7); }),
                       "does not fit the 6x6 token grid"));
}

TEST_CASE("conversion maps a dense checkpoint into the sparse layout, recovery starts as the dense tokens",
          "[sparsedit][golden]") {
  LoadedModel dense = load_model(golden("tiny_dense10.model.safetensors"), at::kCPU, at::kFloat);
  DiT sparse = make_sparse(dense.model, golden_layout());
  sparse->eval();
  auto g = io::load_tensors(golden("sparsedit.safetensors"));
  at::NoGradGuard no_grad;
  for (int S : {2, 3, 4, 5}) {
    INFO("grid " << S);
    const at::Tensor expected = g.at("out_converted_" + std::to_string(S));
    CHECK(max_abs_diff(sparse->forward(g.at("x"), g.at("t"), g.at("y"), 0, S), expected) <= tolerance(expected));
  }
  // W1 = 0, W2 = I: whatever the sparse tokens, the recovery block's merged tokens are the dense ones, exactly.
  auto& recover = *sparse->sparse_modules[0]->as<nn::SparseDenseModule>()->token_recover;
  const at::Tensor dense_tokens = at::randn({2, 36, 32}), sparse_tokens = at::randn({2, 9, 32});
  CHECK(at::equal(recover.merge(sparse_tokens, dense_tokens, 3, 6, 6), dense_tokens));
  // The Poolingformer's value projection is the dense block's value rows; the top block is the last block.
  const int64_t D = 32;
  auto* pool = sparse->pooling_blocks[0]->as<nn::PoolingformerBlock>();
  auto* first = dense.model->blocks[0]->as<nn::DiTBlock>();
  CHECK(at::equal(pool->attn->v->weight, first->attn->qkv->weight.narrow(0, 2 * D, D)));
  auto* merge = sparse->sparse_modules[1]->as<nn::SparseDenseModule>()->token_merge.get();
  auto* fifth = dense.model->blocks[5]->as<nn::DiTBlock>();  // 1 pooling + 4 blocks of module 0 before it
  CHECK(at::equal(merge->attn->kv->weight, fifth->attn->qkv->weight.narrow(0, D, 2 * D)));
  CHECK(at::equal(sparse->blocks[0]->as<nn::DiTBlock>()->mlp->fc2->weight,
                  dense.model->blocks[9]->as<nn::DiTBlock>()->mlp->fc2->weight));
  // Converting twice, or into a layout deeper than the model, is refused.
  CHECK(test::error_kind([&] { make_sparse(sparse, golden_layout()); }) == ErrorKind::Usage);
  SparseConfig too_deep = golden_layout();
  too_deep.semantic = 3;
  CHECK(test::contains(test::error_message([&] { make_sparse(dense.model, too_deep); }), "must not exceed depth"));
}

TEST_CASE("a converted checkpoint saves, loads, runs and counts its parameters", "[sparsedit]") {
  test::TempDir dir;
  LoadedModel dense = load_model(golden("tiny_dense10.model.safetensors"), at::kCPU, at::kFloat);
  DiT sparse = make_sparse(dense.model, golden_layout());
  sparse->eval();
  CHECK(dit_parameter_count(sparse->config()) == test::parameter_count(*sparse));
  ModelInfo info = dense.info;
  info.config = sparse->config();
  save_model(dir / "sparse.safetensors", sparse, info);
  LoadedModel back = load_model(dir / "sparse.safetensors", at::kCPU, at::kFloat);
  CHECK(back.info.config.sparse.modules == 2);
  at::Tensor x = at::randn({1, 4, 12, 12}), t = at::tensor({3}), y = at::tensor({2});
  at::NoGradGuard no_grad;
  for (int S : {2, 5}) CHECK(at::equal(back.model->forward(x, t, y, 0, S), sparse->forward(x, t, y, 0, S)));
  // A fresh sparse model starts with recovery blocks that pass the dense tokens through.
  DiT fresh(sparse->config());
  fresh->initialize_weights();
  auto& recover = *fresh->sparse_modules[1]->as<nn::SparseDenseModule>()->token_recover;
  const at::Tensor dense_tokens = at::randn({1, 36, 32});
  CHECK(at::equal(recover.merge(at::randn({1, 4, 32}), dense_tokens, 2, 6, 6), dense_tokens));
}

TEST_CASE("sparse configs validate their layout", "[sparsedit]") {
  nlohmann::json j = to_json(load_model(golden("tiny_sparse.model.safetensors"), at::kCPU, at::kFloat).info.config);
  CHECK(j["sparse"]["groups"] == nlohmann::json::array({1, 1, 1, 1}));
  CHECK(j["sparse"]["top_blocks"] == 1);
  CHECK(config_from_json(j).sparse.max_grid == 5);
  auto broken = [&](const char* key, nlohmann::json value) {
    nlohmann::json k = j;
    k["sparse"][key] = std::move(value);
    return test::error_message([&] { config_from_json(k); });
  };
  CHECK(test::contains(broken("groups", {2, 1, 1, 1}), "sparse.groups must be [1, semantic blocks, 1, dense blocks]"));
  CHECK(test::contains(broken("groups", {1, 1, 1}), "sparse.groups"));
  CHECK(test::contains(broken("top_blocks", 3), "sparse.top_blocks must equal"));
  CHECK(test::contains(broken("max_grid", 7), "sparse grids must satisfy"));
  CHECK(test::contains(broken("min_grid", 0), "sparse grids must satisfy"));
  CHECK(test::contains(broken("modules", 0), "sparse.modules"));
  nlohmann::json deeper = j;
  deeper["sparse"]["modules"] = 3;
  deeper["sparse"].erase("top_blocks");
  CHECK(test::contains(test::error_message([&] { config_from_json(deeper); }), "must not exceed depth"));
  nlohmann::json no_groups = j;
  no_groups["sparse"].erase("groups");
  CHECK(test::error_kind([&] { config_from_json(no_groups); }) == ErrorKind::Model);
}

TEST_CASE("the density schedule: the sparsest grid for a quarter of the steps, then linearly denser",
          "[sparsedit][schedule]") {
  using schedule::ComputeSchedule;
  using schedule::Density;
  auto g = io::load_tensors(golden("sparsedit.safetensors"));
  for (int k = 0; k < 50; ++k) CHECK(Density{6, 10}.grid(k, 50) == g.at("density_grids")[k].item<int64_t>());
  for (int k = 0; k < 20; ++k) CHECK(Density{2, 5}.grid(k, 20) == g.at("density_grids_20")[k].item<int64_t>());
  CHECK(Density{6, 10}.grid(12, 50) == 6);  // steps 0..12 hold the sparsest grid (k0 = 13)
  CHECK(Density{6, 10}.grid(49, 50) == 10);
  CHECK(Density{6, 10, 1.0}.grid(49, 50) == 6);
  CHECK(Density{3, 9}.grid(0, 1) == 9);  // one step: it is the last
  // Training pairs each noise level with the grid of the step that sees it.
  CHECK(Density{6, 10}.grid_at_noise(1.0) == 6);
  CHECK(Density{6, 10}.grid_at_noise(0.0) == 10);
  CHECK(Density{6, 10}.grid_at_noise(0.9) == Density{6, 10}.grid(5, 50));  // k = floor(0.1 * 49 + 0.5)
  for (double level = 0; level < 1; level += 0.01)
    CHECK(Density{6, 10}.grid_at_noise(level) >= Density{6, 10}.grid_at_noise(level + 0.01));
  // Each grid's noise range holds exactly the levels grid_at_noise gives it (boundaries within rounding), and
  // the ranges tile [0, 1]; a grid no step runs at has none.
  for (const Density& d : {Density{6, 10}, Density{4, 12}, Density{3, 9, 0.5}}) {
    double covered = 0;
    for (int S = d.min_grid; S <= d.max_grid; ++S) {
      const auto [lo, hi] = d.noise_range(S);
      REQUIRE(lo < hi);
      covered += hi - lo;
      for (double level = 0.0005; level < 1; level += 0.001) {
        const bool inside = level > lo + 1e-9 && level < hi - 1e-9, outside = level < lo - 1e-9 || level > hi + 1e-9;
        if (inside) CHECK(d.grid_at_noise(level) == S);
        if (outside) CHECK(d.grid_at_noise(level) != S);
      }
    }
    CHECK(covered == Approx(1.0));
  }
  CHECK(Density{6, 10}.noise_range(6).second == 1.0);   // the sparsest grid takes pure noise
  CHECK(Density{6, 10}.noise_range(10).first == 0.0);   // the densest the clean end
  CHECK(Density{6, 10}.noise_range(5).first > Density{6, 10}.noise_range(5).second);  // below min_grid: none

  DiTConfig model = load_model(golden("tiny_sparse.model.safetensors"), at::kCPU, at::kFloat).info.config;
  // Without a density the model follows its own range; a dense model gets no grid.
  const ComputeSchedule plain;
  CHECK(plain.plan(0, 20, model, true).sparse_grid == 2);
  CHECK(plain.plan(19, 20, model, true).sparse_grid == 5);
  CHECK(plain.plan(0, 20, DiTConfig{}, true).sparse_grid == 0);
  const ComputeSchedule d = ComputeSchedule::parse("density=3:4,density-hold=50%");
  CHECK(d.text() == "density=3:4,density-hold=0.5");
  CHECK(ComputeSchedule::parse(d.text()).text() == d.text());
  std::vector<int> grids;
  for (int k = 0; k < 6; ++k) grids.push_back(d.plan(k, 6, model, false).sparse_grid);
  CHECK(grids == std::vector<int>{3, 3, 3, 3, 4, 4});
  CHECK(ComputeSchedule::parse("grid=4").text() == "grid=4");
  CHECK(ComputeSchedule::parse("grid=4").plan(0, 10, model, false).sparse_grid == 4);
  CHECK(ComputeSchedule::parse("density=6:10").text() == "density=6:10");

  for (const char* bad : {"density=5:3", "density=6", "grid=0", "grid=2.5", "density-hold=0.3", "density=2:4,density-hold=2"}) {
    INFO(bad);
    CHECK(test::error_kind([&] { ComputeSchedule::parse(bad); }) == ErrorKind::Usage);
  }
  // A density needs a sparse model; grids must fit the token grid.
  CHECK(test::contains(test::error_message([&] { ComputeSchedule::parse("grid=3").validate(DiTConfig{}, 32, 32, 10); }),
                       "no sparse layout"));
  CHECK(test::contains(test::error_message([&] { ComputeSchedule::parse("density=2:7").validate(model, 12, 12, 10); }),
                       "sparse grid 7 does not fit"));
  ComputeSchedule::parse("density=2:6").validate(model, 12, 12, 10);

  // A YAML preset.
  test::TempDir dir;
  std::ofstream(dir / "s.yaml") << "description: sparse\ndensity: {min: 2, max: 4, hold: 0.5}\n";
  CHECK(ComputeSchedule::load_yaml(dir / "s.yaml").text() == "density=2:4,density-hold=0.5");
  std::ofstream(dir / "bad.yaml") << "density: {min: 2, most: 4}\n";
  CHECK(test::error_kind([&] { ComputeSchedule::load_yaml(dir / "bad.yaml"); }) == ErrorKind::Input);
}

TEST_CASE("sparse FLOPs: per grid, averaged over the density schedule, the paper's DiT-XL/2 layouts",
          "[sparsedit][schedule]") {
  const DiTConfig dense512 = official_config("DiT-XL/2-512"), sparse512 = official_config("SparseDiT-XL/2-512");
  CHECK(dit_gflops(dense512, 64, 64) == Approx(524.54).margin(0.01));
  // Our reference counts the recovery's W1 on all N tokens; ditgen applies it to the S x S tokens before
  // the (row-repeating) upsampling: 4 modules x (N - S^2) x D^2 fewer.
  auto w1_saving = [](int S) { return 4.0 * (1024 - S * S) * 1152.0 * 1152.0 / 1e9; };
  CHECK(dit_gflops(sparse512, 64, 64, 0, false, 6) == Approx(220.36 - w1_saving(6)).margin(0.01));
  CHECK(dit_gflops(sparse512, 64, 64, 0, false, 8) == Approx(228.10 - w1_saving(8)).margin(0.01));
  CHECK(dit_gflops(sparse512, 64, 64, 0, false, 10) == Approx(238.12 - w1_saving(10)).margin(0.01));
  // The schedule's average over 250 steps, one branch.
  const auto steps = schedule::step_gflops(sparse512, 64, 64, schedule::ComputeSchedule(), 250, false);
  double mean = 0;
  for (double s : steps) mean += s / 250;
  CHECK(steps.front() == Approx(dit_gflops(sparse512, 64, 64, 0, false, 6)));
  CHECK(steps.back() == Approx(dit_gflops(sparse512, 64, 64, 0, false, 10)));
  CHECK(mean > steps.front());
  CHECK(mean < steps.back());
  CHECK(dit_parameter_count(sparse512) == dit_parameter_count(dense512) - 2 * (2 * 1152 * 1152 + 2 * 1152) +
                                              4 * 2 * (1152 * 1152 + 1152));
  CHECK(official_config("SparseDiT-XL/2").top_blocks() == 3);
}

TEST_CASE("sparse generation follows the density schedule and costs what it plans", "[sparsedit][generator]") {
  LoadedModel sparse = load_model(golden("tiny_sparse.model.safetensors"), at::kCPU, at::kFloat);
  Generator gen(sparse, at::kCPU, at::kFloat);
  GenerationRequest r;
  r.labels = {1, 2};
  r.seeds = {5, 6};
  r.sampler = {"ddim", 6, 0.0};
  r.guidance.scale = 3.0;
  const at::Tensor by_default = gen.generate(r).frames;
  CHECK(at::isfinite(by_default).all().item<bool>());
  const auto steps = gen.step_gflops(r);
  REQUIRE(steps.size() == 6);
  CHECK(steps.front() < steps.back());  // grid 2 first, grid 5 last
  r.schedule = schedule::ComputeSchedule::parse("density=2:5");  // the model's own range, spelled out
  CHECK(at::equal(gen.generate(r).frames, by_default));
  r.schedule = schedule::ComputeSchedule::parse("grid=5");
  const at::Tensor densest = gen.generate(r).frames;
  CHECK(max_abs_diff(densest, by_default) > 1e-4);
  CHECK(gen.gflops_per_image(r) > 0);
  r.schedule = schedule::ComputeSchedule::parse("grid=7");  // the token grid is 6x6
  CHECK(test::contains(test::error_message([&] { gen.validate(r); }), "sparse grid 7 does not fit"));
}

TEST_CASE("a flexible (shared tokenizer) model carries a sparse layout: patch and density schedules compose",
          "[sparsedit][flexidit]") {
  LoadedModel dense = load_model(golden("tiny_dense10.model.safetensors"), at::kCPU, at::kFloat);
  FlexConfig flex;
  flex.patch_sizes = {2, 4};
  DiT flexible = make_flexible(dense.model, flex);
  SparseConfig layout = golden_layout();
  layout.max_grid = 3;  // patch 4 leaves a 3x3 token grid
  DiT both = make_sparse(flexible, layout);
  DiT sparse_only = make_sparse(dense.model, layout);
  both->eval();
  sparse_only->eval();
  at::Tensor x = at::randn({2, 4, 12, 12}), t = at::tensor({5, 600}), y = at::tensor({1, 10});
  at::NoGradGuard no_grad;
  // At its own patch the flexible tokenizer is the original one.
  const at::Tensor reference = sparse_only->forward(x, t, y, 2, 3);
  CHECK(max_abs_diff(both->forward(x, t, y, 2, 3), reference) <= 1e-6 * std::max(1.0, reference.abs().max().item<double>()));
  CHECK(at::isfinite(both->forward(x, t, y, 4, 2)).all().item<bool>());
  LoadedModel loaded{both, dense.info};
  loaded.info.config = both->config();
  Generator gen(loaded, at::kCPU, at::kFloat);
  GenerationRequest r;
  r.labels = {3};
  r.seeds = {1};
  r.sampler = {"ddim", 6, 0.0};
  r.guidance.scale = 2.0;
  r.schedule = schedule::ComputeSchedule::parse("weak=4:0.5,density=2:3");
  CHECK(at::isfinite(gen.generate(r).frames).all().item<bool>());
  const auto steps = gen.step_gflops(r);
  CHECK(steps.front() < steps.back());
  // Patch 4 (3x3 tokens) for steps 1-3 at grids 2, 2, 2; patch 2 for steps 4-6 at grids 3, 3, 4.
  r.schedule = schedule::ComputeSchedule::parse("weak=4:0.5,density=2:4");
  CHECK_NOTHROW(gen.validate(r));
  // Grids 2, 3, 4 at patch 4, then 4, 5, 6 at patch 2.
  r.schedule = schedule::ComputeSchedule::parse("weak=4:0.5,density=2:6,density-hold=0");
  CHECK(test::contains(test::error_message([&] { gen.validate(r); }),
                       "sparse grid 4 does not fit the 3-token side of 12x12 at patch size 4 (step 3 of 6)"));
}

TEST_CASE("the CLI runs sparse models: init from a spec, density flags, info, metadata and errors",
          "[sparsedit][cli]") {
  test::TempDir dir;
  std::ofstream(dir / "spec.yaml") << "name: tiny-sparse\n" << kTinySparseConfig;
  const std::string model = (dir / "sparse.safetensors").string();
  REQUIRE(test::run_cli({"init", "spec.yaml", "-o", model, "--weights", "normal"}, dir.path()).exit_code == 0);
  auto cli = [&](std::vector<std::string> args) {
    args.insert(args.begin() + 1, {"-m", model});
    return test::run_cli(args, dir.path());
  };
  auto r = cli({"generate", "3", "--schedule", "density=2:4", "--steps", "4", "-s", "3", "-o", "a.png",
                "--device", "cpu", "-v"});
  REQUIRE(r.exit_code == 0);
  nlohmann::json rec = read_generation_record(dir / "a.png");
  CHECK(rec["schedule"] == "density=2:4");
  REQUIRE(rec["gflops_per_step"].size() == 4);
  CHECK(rec["gflops_per_step"][0].get<double>() < rec["gflops_per_step"][3].get<double>());
  REQUIRE(cli({"generate", "--from", "a.png", "--device", "cpu"}).exit_code == 0);
  CHECK(io::read_png(dir / "a-replay.png").pixels == io::read_png(dir / "a.png").pixels);

  r = test::run_cli({"info", model, "--steps", "8"}, dir.path());
  REQUIRE(r.exit_code == 0);
  CHECK(test::contains(r.out, "sparse:      1 Poolingformer, 1 modules [1, 1, 1, 0], 0 top blocks; trained for grids 2..5"));
  CHECK(test::contains(r.out, "grids:       steps 1-3: 2, steps 4-5: 3, steps 6-7: 4, steps 8-8: 5"));
  r = test::run_cli({"info", model, "--steps", "8", "--schedule", "grid=3", "--json"}, dir.path());
  REQUIRE(r.exit_code == 0);
  auto j = nlohmann::json::parse(r.out);
  CHECK(j["generation"]["sparse_grid_per_step"] == nlohmann::json(std::vector<int>(8, 3)));
  CHECK(j["generation"]["fraction_of_dense"].get<double>() < 1.0);
  CHECK(j["gflops_per_forward_by_grid"].size() == 4);

  // Errors: a grid too large, a density on a dense model, a bad layout; usage exit code, nothing written.
  r = cli({"generate", "3", "--schedule", "grid=9", "-o", "x.png", "--device", "cpu"});
  CHECK(r.exit_code == 2);
  CHECK(test::contains(r.err, "sparse grid 9 does not fit"));
  r = test::run_cli({"generate", "-m", test::make_tiny_model(dir), "3", "--schedule", "density=2:4", "-o", "x.png",
                     "--device", "cpu"},
                    dir.path());
  CHECK(r.exit_code == 2);
  CHECK(test::contains(r.err, "no sparse layout"));
  CHECK_FALSE(std::filesystem::exists(dir / "x.png"));
  std::ofstream(dir / "deep.yaml") << "config:\n  depth: 2\n  hidden_size: 32\n  num_heads: 2\n  patch_size: 2\n"
                                      "  in_channels: 1\n  input_size: [16, 16]\n  num_classes: 10\n  sparse: "
                                      "{pooling_blocks: 1, modules: 1, groups: [1, 1, 1, 0], min_grid: 2, max_grid: 5}\n";
  r = test::run_cli({"init", "deep.yaml", "-o", "deep.safetensors"}, dir.path());
  CHECK(r.exit_code != 0);
  CHECK(test::contains(r.err, "must not exceed depth"));
  CHECK_FALSE(std::filesystem::exists(dir / "deep.safetensors"));
}

TEST_CASE("a model's default schedule: generate and info follow it, flags override it, bad ones are refused",
          "[sparsedit][cli]") {
  test::TempDir dir;
  std::ofstream(dir / "spec.yaml") << kTinySparseConfig << "sampler_defaults: {steps: 4, schedule: grid=3}\n";
  REQUIRE(test::run_cli({"init", "spec.yaml", "-o", "m.safetensors", "--weights", "normal"}, dir.path()).exit_code == 0);
  auto r = test::run_cli({"info", "m.safetensors", "--steps", "8"}, dir.path());
  REQUIRE(r.exit_code == 0);
  CHECK(test::contains(r.out, "grids:       steps 1-8: 3"));
  CHECK(test::contains(r.out, "sampling:    ddim, 4 steps, cfg 4, schedule grid=3"));
  r = test::run_cli({"info", "m.safetensors", "--steps", "8", "--schedule", "dense"}, dir.path());
  CHECK(test::contains(r.out, "grids:       steps 1-3: 2, steps 4-5: 3, steps 6-7: 4, steps 8-8: 5"));
  for (const auto& [flags, expected] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{}, "grid=3"}, {{"--schedule", "dense"}, "dense"}, {{"--schedule", "density=2:4"}, "density=2:4"}}) {
    std::vector<std::string> args{"generate", "-m", "m.safetensors", "3", "-o", "a.png", "--device", "cpu"};
    args.insert(args.end(), flags.begin(), flags.end());
    REQUIRE(test::run_cli(args, dir.path()).exit_code == 0);
    CHECK(read_generation_record(dir / "a.png")["schedule"] == expected);
    std::filesystem::remove(dir / "a.png");
  }

  // A default the model cannot run: refused in a spec (input error) and in a model file (model error).
  std::ofstream(dir / "dense.yaml") << "config:\n  depth: 2\n  hidden_size: 32\n  num_heads: 2\n  patch_size: 2\n"
                                       "  in_channels: 1\n  input_size: [16, 16]\n  num_classes: 10\n"
                                       "sampler_defaults: {schedule: density=2:4}\n";
  r = test::run_cli({"init", "dense.yaml", "-o", "dense.safetensors"}, dir.path());
  CHECK(r.exit_code == 3);
  CHECK(test::contains(r.err, "default schedule 'density=2:4'"));
  CHECK_FALSE(std::filesystem::exists(dir / "dense.safetensors"));
  io::Metadata meta = io::SafetensorsFile::open(dir / "m.safetensors", ErrorKind::Model).metadata();
  auto defaults = nlohmann::json::parse(meta.at("ditgen.sampler_defaults"));
  defaults["schedule"] = "grid=9";  // larger than the 8x8 token grid
  meta["ditgen.sampler_defaults"] = defaults.dump();
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (auto& [name, tensor] : io::load_tensors(dir / "m.safetensors", ErrorKind::Model)) tensors.emplace_back(name, tensor);
  io::save_tensors(dir / "bad.safetensors", tensors, meta);
  r = test::run_cli({"info", "bad.safetensors"}, dir.path());
  CHECK(r.exit_code == 4);
  CHECK(test::contains(r.err, "default schedule 'grid=9'"));
  r = test::run_cli({"generate", "-m", "bad.safetensors", "3", "-o", "b.png", "--device", "cpu"}, dir.path());
  CHECK(r.exit_code == 4);
  CHECK_FALSE(std::filesystem::exists(dir / "b.png"));

  // Training refuses such a default before the first step, so no run ends in a file that cannot load.
  if (test::fashion_mnist_missing("a training config's default schedule", test::Skipping::Rest)) return;
  const std::string spec = std::string(DITGEN_TEST_DATA) + "/../../configs/models/fmnist-tiny.yaml";
  std::ofstream(dir / "train.yaml") << "model: " << spec << "\noutput: run\nsteps: 2\nbatch_size: 2\ndevice: cpu\n"
                                       "bf16: false\nsampler_defaults: {schedule: density=2:4}\n";
  r = test::run_cli({"train", "train.yaml"}, dir.path());
  CHECK(r.exit_code == 2);
  CHECK(test::contains(r.err, "default schedule 'density=2:4'"));
  CHECK_FALSE(std::filesystem::exists(dir / "run" / "model.safetensors"));
}

TEST_CASE("the shipped SparseDiT model is the documented one and generates the classes asked for",
          "[sparsedit][cli]") {
  const std::string model = test::shipped_model("fmnist-sparsedit.safetensors");
  LoadedModel m = load_model(model, at::kCPU, at::kFloat);
  const DiTConfig& c = m.info.config;
  CHECK((c.depth == 6 && c.hidden_size == 256 && c.num_heads == 4 && c.patch_size == 2));
  CHECK((c.sparse.pooling_blocks == 0 && c.sparse.modules == 1 && c.sparse.semantic == 3 && c.sparse.dense == 1 &&
         c.sparse.min_grid == 4 && c.sparse.max_grid == 16));
  CHECK(dit_parameter_count(c) == 7501832);  // models/fmnist-sparsedit.md
  CHECK(m.info.sampler_defaults.schedule == "density=4:12");
  test::check_generates_asked_classes(model);  // at its default schedule
}

TEST_CASE("on the GPU, the token pooling and upsampling kernels equal their references", "[sparsedit][cuda]") {
  if (test::no_cuda_device()) return;
  at::NoGradGuard no_grad;
  struct Case { int h, w, grid; int64_t dim; };
  // Even and uneven bins, a non-square grid, DiT-XL/2's width and one a thread block covers twice.
  for (const Case c : {Case{64, 64, 8, 1152}, Case{64, 64, 6, 1152}, Case{16, 16, 12, 40}, Case{7, 5, 3, 16},
                       Case{9, 9, 2, 2304}}) {
    for (auto [dtype, tol] : std::vector<std::pair<at::ScalarType, double>>{{at::kFloat, 1e-6}, {at::kBFloat16, 4e-3}}) {
      INFO(c.h << "x" << c.w << " -> " << c.grid << ", D " << c.dim << ", " << c10::toString(dtype));
      const at::Tensor x = at::randn({3, c.h * c.w, c.dim}, at::kDouble) + 0.5;  // [3, N, D]
      const at::Tensor x_gpu = x.to(at::kCUDA, dtype);
      const at::Tensor pooled = cuda::pool_tokens(x_gpu, c.h, c.w, c.grid).to(at::kCPU, at::kDouble);
      const at::Tensor expected_pool = cuda::pool_tokens_reference(x_gpu.to(at::kCPU, at::kDouble), c.h, c.w, c.grid);
      CHECK(test::close_relative(pooled, expected_pool, tol));
      const at::Tensor sparse = at::randn({3, c.grid * c.grid, c.dim}, at::kDouble);  // [3, S*S, D]
      at::Tensor sum = x_gpu.clone();
      cuda::add_upsampled_tokens_(sum, sparse.to(at::kCUDA, dtype), c.grid, c.h, c.w);
      at::Tensor expected_sum = x_gpu.to(at::kCPU, at::kDouble);
      cuda::add_upsampled_tokens_reference_(expected_sum, sparse.to(dtype).to(at::kDouble), c.grid, c.h, c.w);
      CHECK(test::close_relative(sum.to(at::kCPU, at::kDouble), expected_sum, tol));
      // Not the transposed grid: a row-column mix-up would pass on square grids only.
      if (c.h != c.w)
        CHECK_FALSE(test::close_relative(pooled, cuda::pool_tokens_reference(x, c.w, c.h, c.grid), 0.1));
    }
  }
  // A width the 16-byte packs do not divide runs the reference.
  const at::Tensor odd = at::randn({2, 16, 12}, at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16));
  CHECK(at::equal(cuda::pool_tokens(odd, 4, 4, 3), cuda::pool_tokens_reference(odd, 4, 4, 3)));
}

TEST_CASE("on the GPU, sparse forwards and captured density-scheduled generation match the reference",
          "[sparsedit][cuda]") {
  if (test::no_cuda_device()) return;
  LoadedModel sparse = load_model(golden("tiny_sparse.model.safetensors"), at::kCPU, at::kFloat);
  auto g = io::load_tensors(golden("sparsedit.safetensors"));
  at::NoGradGuard no_grad;
  const at::Tensor reference = sparse.model->forward_reference(g.at("x"), g.at("t"), g.at("y"), 0, 3);
  sparse.model->to(at::kCUDA);
  const at::Tensor fused = sparse.model->forward(g.at("x").cuda(), g.at("t").cuda(), g.at("y").cuda(), 0, 3).cpu();
  CHECK(max_abs_diff(fused, reference) <= 1e-4 * std::max(1.0, reference.abs().max().item<double>()));
  sparse.model->to(at::kCPU);
  Generator generator(sparse, at::kCUDA, at::kFloat);
  GenerationRequest r;
  r.sampler = {"ddim", 8, 0.0};
  r.guidance = {2.0, 0};
  r.schedule = schedule::ComputeSchedule::parse("density=1:6");  // 6 grids, one graph each
  // Three batch sizes: 18 captured graphs over the run, more than the cache keeps between batches.
  for (int batch : {3, 2, 1, 3}) {
    INFO("batch " << batch);
    r.labels.assign(batch, 4);
    r.seeds.assign(batch, 9);
    test::check_captured_matches_eager(generator, r);
  }
}
