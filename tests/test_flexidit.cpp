// FlexiDiT: the PI-resize tokenizer against golden tensors from scripts/make_golden_flexidit.py, the
// flexible model keeping the original's function at its own patch size, LoRA mode, compute schedules,
// weak-model guidance and scheduled generation.
#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "catch.h"
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

FlexConfig flex_of(std::vector<int> sizes, const std::string& mode = "shared") {
  FlexConfig f;
  f.patch_sizes = std::move(sizes);
  f.mode = mode;
  f.lora_rank = 4;
  f.lora_alpha = 4;
  return f;
}

}  // namespace

TEST_CASE("PI-resize matrices match torch's bilinear interpolation and their pseudo-inverses", "[flexidit][golden]") {
  auto g = io::load_tensors(golden("flexidit.safetensors"));
  for (auto [from, to] : {std::pair{4, 2}, {2, 4}, {4, 1}, {4, 8}, {3, 5}}) {
    INFO(from << " -> " << to);
    CHECK(max_abs_diff(nn::bilinear_resize_matrix(from, to), g.at(c10::str("resize_", from, "_", to))) < 1e-12);
  }
  for (int p : {1, 2, 4, 8}) {
    INFO("patch " << p);
    CHECK(max_abs_diff(nn::embed_projection(p, 4), g.at(c10::str("embed_projection_", p))) < 1e-9);
    CHECK(max_abs_diff(nn::deembed_projection(p, 4), g.at(c10::str("deembed_projection_", p))) < 1e-9);
  }
  // The underlying size maps to itself; downsampling 4 -> 2 without antialias is 2x2 average pooling.
  CHECK(max_abs_diff(nn::embed_projection(4, 4), at::eye(16, at::kDouble)) < 1e-12);
  CHECK(max_abs_diff(nn::bilinear_resize_matrix(4, 2).sum(1), at::ones({4}, at::kDouble)) < 1e-12);
  CHECK(nn::bilinear_resize_matrix(4, 2).max().item<double>() == 0.25);
}

TEST_CASE("a flexible model reproduces the original at its patch size and the reference at the others",
          "[flexidit][golden]") {
  LoadedModel dense = load_model(golden("tiny_p2.model.safetensors"), at::kCPU, at::kFloat);
  auto g = io::load_tensors(golden("flexidit.safetensors"));
  at::NoGradGuard no_grad;
  const at::Tensor &x = g.at("x"), &t = g.at("t"), &y = g.at("y");
  const at::Tensor original = dense.model->forward(x, t, y);

  DiT flexible = make_flexible(dense.model, flex_of({1, 2, 4, 8}));
  flexible->eval();
  INFO("at patch 2, max abs error " << max_abs_diff(flexible->forward(x, t, y), original));
  CHECK(max_abs_diff(flexible->forward(x, t, y), original) <= 1e-6);
  CHECK(max_abs_diff(flexible->forward(x, t, y, 2), original) <= 1e-6);
  CHECK(flexible->forward(x, t, y, 4).sizes() == original.sizes());

  // With the reference's patch-size embeddings, every size matches the PyTorch reference.
  flexible->flex->patch_size_embed.copy_(g.at("patch_size_embed"));
  for (int p : {1, 2, 4, 8}) {
    INFO("patch " << p << ", max abs error " << max_abs_diff(flexible->forward(x, t, y, p), g.at(c10::str("out_", p))));
    CHECK(max_abs_diff(flexible->forward(x, t, y, p), g.at(c10::str("out_", p))) <= 1e-5);
  }
  CHECK_THROWS(flexible->forward(x, t, y, 3));
  CHECK(test::error_kind([&] { make_flexible(flexible, flex_of({2, 4})); }) == ErrorKind::Usage);
  CHECK(test::error_message([&] { make_flexible(dense.model, flex_of({4, 8})); }).find("must include patch_size") !=
        std::string::npos);
}

TEST_CASE("the shipped default model made flexible reproduces it at patch 2", "[flexidit]") {
  LoadedModel dense = load_model(test::shipped_model("fmnist-dit.safetensors"), at::kCPU, at::kFloat);
  at::NoGradGuard no_grad;
  at::Tensor x = at::randn({2, 1, 32, 32}), t = at::tensor({5, 900}), y = at::tensor({1, 10});
  DiT flexible = make_flexible(dense.model, flex_of({2, 4, 8}));
  flexible->eval();
  const double err = max_abs_diff(flexible->forward(x, t, y), dense.model->forward(x, t, y));
  INFO("max abs error " << err);
  CHECK(err <= 1e-6);
}

TEST_CASE("lora mode keeps the original exactly and starts from the PI-resized tokenizer", "[flexidit]") {
  LoadedModel dense = load_model(golden("tiny_p2.model.safetensors"), at::kCPU, at::kFloat);
  auto g = io::load_tensors(golden("flexidit.safetensors"));
  at::NoGradGuard no_grad;
  const at::Tensor &x = g.at("x"), &t = g.at("t"), &y = g.at("y");
  DiT lora = make_flexible(dense.model, flex_of({2, 4}, "lora"));
  DiT shared = make_flexible(dense.model, flex_of({2, 4}));
  lora->eval();
  shared->eval();
  CHECK(at::equal(lora->forward(x, t, y), dense.model->forward(x, t, y)));  // bit for bit
  CHECK(max_abs_diff(lora->forward(x, t, y, 4), shared->forward(x, t, y, 4)) <= 1e-5);

  // Trained adapters change patch 4 only; merged copies compute the same function.
  for (auto& item : lora->named_parameters())
    if (item.key().find("lora_B_p4") != std::string::npos) item.value().normal_(0, 0.05);
  const at::Tensor unmerged = lora->forward(x, t, y, 4);
  CHECK(max_abs_diff(unmerged, shared->forward(x, t, y, 4)) > 1e-3);
  CHECK(at::equal(lora->forward(x, t, y), dense.model->forward(x, t, y)));
  lora->set_lora_merged(true);
  CHECK(lora->lora_merged());
  CHECK(max_abs_diff(lora->forward(x, t, y, 4), unmerged) <= 1e-5);
  CHECK(at::equal(lora->forward(x, t, y), dense.model->forward(x, t, y)));
  const DiTConfig& c = lora->config();
  CHECK(dit_gflops(c, 8, 8, 4, /*lora_merged=*/true) < dit_gflops(c, 8, 8, 4, false));
  CHECK(dit_gflops(c, 8, 8, 2, true) == dit_gflops(dense.info.config, 8, 8));
}

TEST_CASE("flexible models save, load, count their parameters and FLOPs", "[flexidit]") {
  test::TempDir dir;
  LoadedModel dense = load_model(golden("tiny_p2.model.safetensors"), at::kCPU, at::kFloat);
  at::Tensor x = at::randn({1, 4, 8, 8}), t = at::tensor({3}), y = at::tensor({2});
  for (const std::string mode : {"shared", "lora"}) {
    INFO(mode);
    DiT flexible = make_flexible(dense.model, flex_of({1, 2, 4, 8}, mode));
    flexible->eval();
    CHECK(dit_parameter_count(flexible->config()) == test::parameter_count(*flexible));
    ModelInfo info = dense.info;
    info.config = flexible->config();
    save_model(dir / (mode + ".safetensors"), flexible, info);
    LoadedModel back = load_model(dir / (mode + ".safetensors"), at::kCPU, at::kFloat);
    CHECK(back.info.config.flex.patch_sizes == std::vector<int>{1, 2, 4, 8});
    CHECK(back.info.config.flex.mode == mode);
    at::NoGradGuard no_grad;
    for (int p : {1, 4, 8}) CHECK(at::equal(back.model->forward(x, t, y, p), flexible->forward(x, t, y, p)));
  }
  // FlexiDiT-XL/2 at patch 4 costs what DiT-XL/4 does (the paper's 29.05 vs 118.6 GFLOPs).
  const DiTConfig flex_xl = official_config("FlexiDiT-XL/2");
  CHECK(dit_gflops(flex_xl, 32, 32) == Approx(118.6).margin(0.05));
  CHECK(dit_gflops(flex_xl, 32, 32, 4) == Approx(dit_gflops(official_config("DiT-XL/4"), 32, 32)));
  CHECK(dit_gflops(flex_xl, 32, 32, 4) == Approx(29.05).margin(0.05));
  CHECK(dit_parameter_count(flex_xl) == dit_parameter_count(official_config("DiT-XL/2")) + 4 * 4 * 4 * 1152 -
                                            2 * 2 * 4 * 1152 + 1152 * (4 * 4 - 2 * 2) * 8 + 4 * 1152 + 8 * (16 - 4));
}

TEST_CASE("compute schedules parse, print and plan each step", "[flexidit][schedule]") {
  using schedule::ComputeSchedule;
  ComputeSchedule dense;
  CHECK(dense.dense());
  CHECK(dense.text() == "dense");
  CHECK(ComputeSchedule::parse("dense").dense());

  ComputeSchedule weak = ComputeSchedule::parse("weak=4:0.4");
  CHECK(weak.text() == "weak=4:0.4");
  for (int k = 0; k < 10; ++k) {
    INFO("step " << k);
    const schedule::StepPlan p = weak.plan(k, 10, DiTConfig{}, /*guided=*/true);
    CHECK(p.cond_patch == (k < 4 ? 4 : 2));
    CHECK(p.guide_patch == p.cond_patch);
    CHECK_FALSE(p.weak_guidance);
  }
  // The paper's "x/y" form: powerful for the last 3 conditional and the last 6 guidance steps of 10.
  ComputeSchedule split = ComputeSchedule::parse("cond=4:70%,guide=4:0.4");
  CHECK(split.text() == "cond=4:0.7,guide=4:0.4");
  CHECK(split.plan(5, 10, DiTConfig{}, true).cond_patch == 4);
  CHECK(split.plan(5, 10, DiTConfig{}, true).guide_patch == 2);
  CHECK_FALSE(split.plan(5, 10, DiTConfig{}, true).weak_guidance);  // cond larger than guide: ordinary CFG
  ComputeSchedule weak_guide = ComputeSchedule::parse("cond=4:0.3,guide=4:0.6");
  CHECK(weak_guide.plan(4, 10, DiTConfig{}, true).weak_guidance);
  CHECK_FALSE(weak_guide.plan(4, 10, DiTConfig{}, false).weak_guidance);  // unguided: one branch, no weak guidance
  CHECK_FALSE(ComputeSchedule::parse("cond=4:0.3,guide=4:0.6,guidance=null").plan(4, 10, DiTConfig{}, true).weak_guidance);
  ComputeSchedule three = ComputeSchedule::parse("weak=8:0.2+4:0.5,weak-scale=2.5");
  CHECK(three.text() == "weak=8:0.2+4:0.5,weak-scale=2.5");
  CHECK(ComputeSchedule::parse(three.text()).text() == three.text());
  std::vector<int> patches;
  for (int k = 0; k < 10; ++k) patches.push_back(three.plan(k, 10, DiTConfig{}, false).cond_patch);
  CHECK(patches == std::vector<int>{8, 8, 4, 4, 4, 2, 2, 2, 2, 2});
  CHECK(three.weak_scale(4.0) == 2.5);
  ComputeSchedule harder = ComputeSchedule::parse("weak=4:0.5,weak-cfg=2.5");
  CHECK(harder.text() == "weak=4:0.5,weak-cfg=2.5");
  CHECK(harder.plan(0, 10, DiTConfig{}, true).cfg_scale == 2.5);   // weak steps guide at 2.5
  CHECK(harder.plan(5, 10, DiTConfig{}, true).cfg_scale == 0);     // the others at the run's scale
  CHECK(harder.plan(0, 10, DiTConfig{}, false).cfg_scale == 0);    // unguided runs stay unguided
  CHECK(weak.weak_scale(3.5) == Approx(2.0));  // (1 - 3.5) / (1 - 2) = 2.5

  for (const char* bad : {"", "weak", "weak=4", "weak=4:1.5", "weak=4:0.5+8:0.3", "weak=x:0.4", "weak=3.5:0.4",
                          "cond=4:0.4,nope=1", "guidance=maybe", "weak-scale=-1", "weak=4:0.4junk"}) {
    INFO("'" << bad << "'");
    CHECK(test::error_kind([&] { ComputeSchedule::parse(bad); }) == ErrorKind::Usage);
  }
  CHECK(test::error_message([] { ComputeSchedule::parse("weak=4:0.5+8:0.3"); }).find("must end after") !=
        std::string::npos);

  // Validation against a model: sizes it does not run, and grids a patch does not divide.
  DiTConfig fixed = official_config("DiT-S/2");
  CHECK(test::error_message([&] { weak.validate(fixed, 32, 32, 10); }).find("not a flexible model") != std::string::npos);
  DiTConfig flexible = official_config("FlexiDiT-S/2");
  weak.validate(flexible, 32, 32, 10);
  CHECK(test::error_message([&] { weak.validate(flexible, 34, 34, 10); }).find("does not divide 34x34") !=
        std::string::npos);
  CHECK(test::error_kind([&] { ComputeSchedule::parse("weak=16:0.4").validate(flexible, 32, 32, 10); }) == ErrorKind::Usage);

  // GFLOPs per step: weak steps cost the patch-4 forward.
  auto gf = schedule::step_gflops(flexible, 32, 32, weak, 10, true);
  REQUIRE(gf.size() == 10);
  CHECK(gf[0] == Approx(2 * dit_gflops(flexible, 32, 32, 4)));
  CHECK(gf[9] == Approx(2 * dit_gflops(flexible, 32, 32)));
}

TEST_CASE("schedule presets load from YAML and refuse bad files", "[flexidit][schedule]") {
  test::TempDir dir;
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir / name) << text;
    return dir / name;
  };
  auto s = schedule::ComputeSchedule::load_yaml(
      write("a.yaml", "description: weak start\nboth: [{patch: 4, until: 0.4}]\nguidance: null\n"));
  CHECK(s.text() == "weak=4:0.4,guidance=null");
  CHECK(s.description() == "weak start");
  s = schedule::ComputeSchedule::load_yaml(
      write("b.yaml", "cond:\n  - {patch: 4, until: 0.3}\nguide:\n  - {patch: 4, until: 0.6}\nweak_scale: 1.5\n"));
  CHECK(s.text() == "cond=4:0.3,guide=4:0.6,weak-scale=1.5");
  for (const std::string bad : {"both: 4\n", "cond: [{patch: 4}]\n", "speed: fast\n", "both: [{patch: 4, until: 2}]\n",
                                "- a\n- b\n", "both: [{patch: [4], until: 0.5}]\n"}) {
    INFO(bad);
    CHECK(test::error_kind([&] { schedule::ComputeSchedule::load_yaml(write("bad.yaml", bad)); }) == ErrorKind::Input);
  }
  CHECK(test::error_kind([&] { schedule::ComputeSchedule::load_yaml(dir / "missing.yaml"); }) == ErrorKind::Input);
  // The shipped presets all load.
  int presets = 0;
  for (const auto& entry : std::filesystem::directory_iterator(std::filesystem::path(DITGEN_TEST_DATA) /
                                                                "../../configs/schedules")) {
    INFO(entry.path());
    CHECK_FALSE(schedule::ComputeSchedule::load_yaml(entry.path()).dense());
    ++presets;
  }
  CHECK(presets >= 4);
  // The acceptance schedule of docs/FLEXIDIT.md, as measured.
  CHECK(schedule::ComputeSchedule::load_yaml(std::filesystem::path(DITGEN_TEST_DATA) /
                                             "../../configs/schedules/flexi-50-guided.yaml")
            .text() == "cond=4:0.5,guide=4:0.8,weak-scale=2.5,weak-cfg=1.9");
}

TEST_CASE("guidance runs each branch at its patch size, weak guidance uses the conditional weak prediction",
          "[flexidit][guidance]") {
  LoadedModel dense = load_model(golden("tiny_p2.model.safetensors"), at::kCPU, at::kFloat);
  DiT model = make_flexible(dense.model, flex_of({2, 4}));
  model->eval();
  at::NoGradGuard no_grad;
  model->flex->patch_size_embed.normal_(0, 0.05);
  at::Tensor x = at::randn({2, 4, 8, 8}), t = at::tensor({100, 600}), y = at::tensor({1, 2});
  at::Tensor null_y = at::full({2}, 10, at::kLong);
  sampling::Guidance g;
  g.scale = 3.0;
  g.weak_scale = 1.8;
  auto eps = [](const at::Tensor& o) { return o.narrow(1, 0, 4); };
  // Weak guidance: weak(c) + s2 (strong(c) - weak(c)); variance channels from the strong prediction.
  at::Tensor strong = model->forward(x, t, y, 2), weak = model->forward(x, t, y, 4);
  at::Tensor out = sampling::guided_output(model, x, t, y, null_y, g, {2, 4, true});
  CHECK(max_abs_diff(eps(out), eps(weak) + 1.8 * (eps(strong) - eps(weak))) <= 1e-5);
  CHECK(max_abs_diff(out.narrow(1, 4, 4), strong.narrow(1, 4, 4)) == 0);
  // Branches at different patch sizes with the null class.
  at::Tensor uncond4 = model->forward(x, t, null_y, 4);
  out = sampling::guided_output(model, x, t, y, null_y, g, {2, 4, false});
  CHECK(max_abs_diff(eps(out), eps(uncond4) + 3.0 * (eps(strong) - eps(uncond4))) <= 1e-5);
  // Equal patch sizes: one doubled batch, same result as two forwards.
  at::Tensor cond4 = weak, out4 = sampling::guided_output(model, x, t, y, null_y, g, {4, 4, false});
  CHECK(max_abs_diff(eps(out4), eps(uncond4) + 3.0 * (eps(cond4) - eps(uncond4))) <= 1e-5);
  // A plan's own CFG scale (weak-cfg) replaces the run's.
  schedule::StepPlan harder{4, 4, false, 5.0};
  out4 = sampling::guided_output(model, x, t, y, null_y, g, harder);
  CHECK(max_abs_diff(eps(out4), eps(uncond4) + 5.0 * (eps(cond4) - eps(uncond4))) <= 1e-5);
}

TEST_CASE("scheduled generation: dense equals the default, a schedule costs fewer GFLOPs", "[flexidit][generator]") {
  LoadedModel dense = load_model(golden("tiny_p2.model.safetensors"), at::kCPU, at::kFloat);
  LoadedModel flexible{make_flexible(dense.model, flex_of({2, 4})), dense.info};
  flexible.info.config = flexible.model->config();
  Generator gen(flexible, at::kCPU, at::kFloat);
  Generator original(dense, at::kCPU, at::kFloat);
  GenerationRequest r;
  r.labels = {1, 2};
  r.seeds = {5, 6};
  r.sampler.name = "ddim";
  r.sampler.steps = 6;
  r.guidance.scale = 3.0;
  const at::Tensor base = original.generate(r).frames;
  const double dense_gflops = original.gflops_per_image(r);
  CHECK(max_abs_diff(gen.generate(r).frames, base) <= 1e-6 * base.abs().max().item<double>());
  r.schedule = schedule::ComputeSchedule::parse("cond=4:0.3,guide=4:0.6");
  const at::Tensor scheduled = gen.generate(r).frames;
  CHECK(at::isfinite(scheduled).all().item<bool>());
  CHECK(max_abs_diff(scheduled, base) > 1e-4);
  const auto steps = gen.step_gflops(r);
  REQUIRE(steps.size() == 6);
  double total = 0;
  for (double s : steps) total += s;
  CHECK(gen.gflops_per_image(r) == Approx(total));
  CHECK(total < dense_gflops);
  // A fixed-patch model refuses a schedule before running anything.
  CHECK(test::error_message([&] { original.validate(r); }).find("not a flexible model") != std::string::npos);
}

TEST_CASE("on the GPU, flexible forwards and scheduled captured generation match the reference",
          "[flexidit][cuda]") {
  if (test::no_cuda_device()) return;
  LoadedModel dense = load_model(golden("tiny_p2.model.safetensors"), at::kCPU, at::kFloat);
  for (const std::string mode : {"shared", "lora"}) {
    INFO(mode);
    DiT model = make_flexible(dense.model, flex_of({2, 4}, mode));
    at::NoGradGuard no_grad;
    for (auto& item : model->named_parameters())
      if (item.key().find("lora_B") != std::string::npos || item.key().find("patch_size_embed") != std::string::npos)
        item.value().normal_(0, 0.05);
    model->eval();
    at::Tensor x = at::randn({3, 4, 8, 8}), t = at::tensor({10, 500, 999}), y = at::tensor({0, 1, 2});
    const at::Tensor reference = model->forward_reference(x, t, y, 4);
    model->to(at::kCUDA);
    at::Tensor fused = model->forward(x.cuda(), t.cuda(), y.cuda(), 4).cpu();  // the fused path
    CHECK(max_abs_diff(fused, reference) <= 1e-4 * std::max(1.0, reference.abs().max().item<double>()));
    model->to(at::kCPU);
    LoadedModel flexible{model, dense.info};
    flexible.info.config = model->config();
    Generator generator(flexible, at::kCUDA, at::kFloat);
    GenerationRequest r;
    r.labels = {1, 2, 3};
    r.seeds = {4, 5, 6};
    r.sampler = {"ddim", 8, 0.0};
    r.guidance = {2.0, 0};
    r.schedule = schedule::ComputeSchedule::parse("cond=4:0.25,guide=4:0.5");  // three plans, weak guidance
    test::check_captured_matches_eager(generator, r);
  }
}

TEST_CASE("the CLI runs schedules: flags, presets, prompt-file lines, metadata, replay, info and errors",
          "[flexidit][cli]") {
  test::TempDir dir;
  LoadedModel dense = load_model(test::make_tiny_model(dir), at::kCPU, at::kFloat);
  dense.model->normal_weights(0.05, 7);  // the official zero init would make every output the same
  ModelInfo info = dense.info;
  DiT flexible = make_flexible(dense.model, flex_of({2, 4}));
  info.config = flexible->config();
  const std::string model = (dir / "flex.safetensors").string();
  save_model(model, flexible, info);
  auto cli = [&](std::vector<std::string> args) {
    args.insert(args.begin() + 1, {"-m", model});
    return test::run_cli(args, dir.path());
  };

  auto r = cli({"generate", "sneaker", "--schedule", "weak=4:0.5", "--steps", "4", "-s", "3", "-o", "a.png",
                "--device", "cpu", "-v"});
  REQUIRE(r.exit_code == 0);
  CHECK(test::contains(r.err, "schedule weak=4:0.5"));
  CHECK(test::contains(r.err, "GFLOPs per step: ["));
  nlohmann::json rec = read_generation_record(dir / "a.png");
  CHECK(rec["schedule"] == "weak=4:0.5");
  REQUIRE(rec["gflops_per_step"].size() == 4);
  CHECK(rec["gflops_per_step"][0].get<double>() < rec["gflops_per_step"][3].get<double>());
  CHECK(test::contains(io::read_png_text(dir / "a.png").front().text, "Schedule: weak=4:0.5"));
  REQUIRE(cli({"generate", "--from", "a.png", "--device", "cpu"}).exit_code == 0);  // replays the schedule
  CHECK(io::read_png(dir / "a-replay.png").pixels == io::read_png(dir / "a.png").pixels);
  REQUIRE(cli({"generate", "sneaker", "--steps", "4", "-s", "3", "-o", "dense.png", "--device", "cpu"}).exit_code == 0);
  CHECK(io::read_png(dir / "dense.png").pixels != io::read_png(dir / "a.png").pixels);

  // Presets by name, and per-line schedules in a prompt file (a bad one fails that line alone).
  std::ofstream(dir / "p.txt") << "{\"prompt\": \"bag\", \"schedule\": \"flexi-55\"}\n"
                               << "{\"prompt\": \"coat\", \"schedule\": \"bogus=1\"}\n{\"prompt\": \"dress\"}\n";
  r = cli({"generate", "-f", "p.txt", "--steps", "5", "-o", "p/{index}.png", "--device", "cpu", "--schedule",
           "cond=4:0.2,guide=4:0.6"});
  CHECK(r.exit_code == 6);
  CHECK(test::contains(r.err, "line 2: invalid compute schedule item 'bogus=1'"));
  CHECK(read_generation_record(dir / "p" / "0.png")["schedule"] == "weak=4:0.6");
  CHECK(read_generation_record(dir / "p" / "2.png")["schedule"] == "cond=4:0.2,guide=4:0.6");
  CHECK_FALSE(std::filesystem::exists(dir / "p" / "1.png"));

  r = test::run_cli({"info", model, "--schedule", "flexi-55", "--steps", "10", "--json"}, dir.path());
  REQUIRE(r.exit_code == 0);
  auto j = nlohmann::json::parse(r.out);
  CHECK(j["generation"]["schedule"] == "weak=4:0.6");
  CHECK(j["generation"]["fraction_of_dense"].get<double>() < 0.7);
  CHECK(j["gflops_per_forward_by_patch"].contains("4"));

  // Errors: a fixed-patch model, unknown presets, --merge-lora without adapters; nothing written.
  r = test::run_cli({"generate", "-m", (dir / "tiny.safetensors").string(), "bag", "--schedule", "flexi-55", "-o",
                     "x.png", "--device", "cpu"},
                    dir.path());
  CHECK(r.exit_code == 2);
  CHECK(test::contains(r.err, "not a flexible model"));
  r = cli({"generate", "bag", "--schedule", "flexi-99", "-o", "x.png", "--device", "cpu"});
  CHECK(r.exit_code == 2);
  CHECK(test::contains(r.err, "unknown compute schedule 'flexi-99'"));
  CHECK(test::contains(r.err, "flexi-55"));
  r = cli({"generate", "bag", "--merge-lora", "-o", "x.png", "--device", "cpu"});
  CHECK(r.exit_code == 2);
  CHECK_FALSE(std::filesystem::exists(dir / "x.png"));
}
