// The trainer on tiny models and synthetic data: it learns, resumes exactly, refuses what it must.
#include <cmath>
#include <fstream>

#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>

#include "catch.h"
#include "ditgen/io/tensor_io.h"
#include "ditgen/models/conversions.h"
#include "ditgen/models/model_file.h"
#include "ditgen/train/trainer.h"
#include "helpers.h"

using namespace ditgen;
using ditgen::test::error_kind;
using ditgen::test::max_abs_diff;
using ditgen::test::TempDir;

namespace {

// 200 labelled 16x16 grey images: class k is a bright bar at row 3k plus noise, so there is something
// to learn and the loss can fall.
class BarsDataset : public data::Dataset {
 public:
  BarsDataset() {
    at::Generator g = at::detail::createCPUGenerator(5);
    labels_ = at::arange(200, at::kLong) % 4;                                 // [N]
    images_ = at::full({200, 1, 16, 16}, -1.0f) + 0.1f * at::randn({200, 1, 16, 16}, g);
    for (int64_t i = 0; i < 200; ++i) images_[i][0][3 * labels_[i].item<int64_t>() + 2].fill_(1.0f);
  }
  int64_t size() const override { return 200; }
  int channels() const override { return 1; }
  int height() const override { return 16; }
  int width() const override { return 16; }
  const std::vector<std::string>& class_names() const override { return names_; }
  data::Batch get(const std::vector<int64_t>& idx) const override {
    at::Tensor i = at::tensor(idx, at::kLong);
    return {images_.index_select(0, i), labels_.index_select(0, i)};
  }

 private:
  at::Tensor images_, labels_;
  std::vector<std::string> names_{"a", "b", "c", "d"};
};

std::string write_spec(const TempDir& dir, const std::string& objective) {
  const auto path = dir / ("spec-" + objective + ".yaml");
  std::ofstream(path) << "name: tiny-" << objective << "\nconfig:\n  depth: 2\n  hidden_size: 64\n  num_heads: 4\n"
                      << "  patch_size: 4\n  in_channels: 1\n  input_size: [16, 16]\n  num_classes: 4\n"
                      << "  class_dropout_prob: 0.1\n  learn_sigma: " << (objective == "eps" ? "true" : "false")
                      << "\n  objective: " << objective << "\n  image_space: pixel\n"
                      << "sampler_defaults: {sampler: " << (objective == "eps" ? "ddim" : "euler")
                      << ", steps: 3, cfg_scale: 2.0}\n";
  return path.string();
}

train::TrainConfig tiny_config(const TempDir& dir, const std::string& objective, const std::string& run) {
  train::TrainConfig c;
  c.model = write_spec(dir, objective);
  c.output = dir / run;
  c.steps = 200;
  c.batch_size = 16;
  c.lr = 2e-3;
  c.warmup_steps = 10;
  c.ema_decay = 0.99;
  c.log_every = 20;
  c.checkpoint_every = 100;
  c.device = "cpu";
  c.bf16 = false;
  return c;
}

std::vector<double> logged_losses(const std::filesystem::path& log) {
  std::vector<double> out;
  std::ifstream in(log);
  std::string line;
  while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line).at("loss").get<double>());
  return out;
}

// A dense eps model trained 40 steps on the bars: the starting point of the fine-tuning tests.
std::filesystem::path trained_base(const TempDir& dir, const BarsDataset& data) {
  train::TrainConfig base = tiny_config(dir, "eps", "base");
  base.steps = 40;
  return train::train_model(base, data, false).model_path;
}

// A trained tiny dense model, loaded, with probe inputs and the sparse layout the sparse tests convert it to.
struct SparseFixture {
  TempDir dir;
  BarsDataset data;
  std::filesystem::path dense_path = trained_base(dir, data);
  LoadedModel dense = load_model(dense_path, at::kCPU, at::kFloat);
  at::Tensor x = at::randn({2, 1, 16, 16}), t = at::tensor({20, 800}), y = at::tensor({1, 3});
  // The two blocks become token merge and recovery; 4x4 tokens at patch 4, 2x2 at patch 8.
  SparseConfig layout{0, 1, 0, 0, 1, 3};
};

}  // namespace

TEST_CASE("200 CPU steps lower the loss, for both objectives", "[train]") {
  TempDir dir;
  BarsDataset data;
  for (std::string objective : {"eps", "flow"}) {
    train::TrainConfig c = tiny_config(dir, objective, "run-" + objective);
    auto result = train::train_model(c, data, false);
    auto losses = logged_losses(c.output / "log.jsonl");
    REQUIRE(losses.size() == 10);
    INFO(objective << ": first " << losses.front() << ", last " << losses.back());
    CHECK(losses.back() < 0.7 * losses.front());
    CHECK(std::filesystem::exists(c.output / "samples/step-0000200.png"));
    LoadedModel m = load_model(result.model_path, at::kCPU, at::kFloat);
    CHECK(m.info.training["steps"] == 200);
    CHECK(m.info.training["untrained"] == false);
  }
}

TEST_CASE("Stopping at step 100 and resuming gives the uninterrupted run's weights", "[train]") {
  TempDir dir;
  BarsDataset data;
  train::TrainConfig straight = tiny_config(dir, "eps", "straight");
  straight.steps = 150;
  train::train_model(straight, data, false);
  train::TrainConfig split = tiny_config(dir, "eps", "split");
  split.steps = 150;
  auto first = train::train_model(split, data, false, {}, 100);
  CHECK(first.model_path.empty());
  CHECK(error_kind([&] { train::train_model(split, data, false); }) == ErrorKind::Usage);  // no silent restart
  train::train_model(split, data, true);
  auto a = io::load_tensors(straight.output / "model.safetensors");
  auto b = io::load_tensors(split.output / "model.safetensors");
  REQUIRE(a.size() == b.size());
  for (const auto& [name, tensor] : a) CHECK(at::equal(tensor, b.at(name)));
  CHECK(logged_losses(straight.output / "log.jsonl") == logged_losses(split.output / "log.jsonl"));
}

TEST_CASE("LoRA fine-tuning distilled from a frozen teacher keeps the model file clean", "[train]") {
  TempDir dir;
  BarsDataset data;
  train::TrainConfig base = tiny_config(dir, "eps", "teacher");
  base.steps = 40;
  auto teacher = train::train_model(base, data, false);
  train::TrainConfig c = tiny_config(dir, "eps", "student");
  c.model = teacher.model_path.string();
  c.teacher = teacher.model_path.string();
  c.steps = 20;
  c.freeze = {".*"};
  c.lora = train::LoraOptions{{"blocks\\.[0-9]+\\.(attn\\.(qkv|proj)|mlp\\.fc[12])"}, 4, 4.0};
  auto student = train::train_model(c, data, false);
  LoadedModel m = load_model(student.model_path, at::kCPU, at::kFloat);  // no lora_* tensors left
  auto losses = logged_losses(c.output / "log.jsonl");
  CHECK(losses.front() < 1e-6);  // the student starts as the teacher
}

TEST_CASE("Training configs are validated", "[train][errors]") {
  TempDir dir;
  auto write = [&](const std::string& text) {
    std::ofstream(dir / "c.yaml") << text;
    return dir / "c.yaml";
  };
  CHECK(error_kind([&] { train::load_train_config(write("model: DiT-S/2\nstepz: 3\n")); }) == ErrorKind::Input);
  CHECK(error_kind([&] { train::load_train_config(write("model: DiT-S/2\nsteps: 0\n")); }) == ErrorKind::Input);
  CHECK(error_kind([&] { train::load_train_config(write("steps: 3\n")); }) == ErrorKind::Input);
  CHECK(error_kind([&] { train::load_train_config(write("model: DiT-S/2\nlr: -1\n")); }) == ErrorKind::Input);
  CHECK(error_kind([&] { train::load_train_config(write("model: [unclosed\n")); }) == ErrorKind::Input);
  CHECK(error_kind([&] { train::load_train_config(dir / "absent.yaml"); }) == ErrorKind::Input);
  auto ok = train::load_train_config(write("model: DiT-S/2\nsteps: 7\nlora: {targets: [x], rank: 2}\n"));
  CHECK(ok.steps == 7);
  CHECK(ok.model == "DiT-S/2");
  CHECK(ok.lora->rank == 2);
}

TEST_CASE("FlexiDiT fine-tuning: shared weights at random patch sizes, or LoRA distilled from the frozen model",
          "[train][flexidit]") {
  TempDir dir;
  BarsDataset data;
  const auto dense_path = trained_base(dir, data);
  LoadedModel dense = load_model(dense_path, at::kCPU, at::kFloat);
  at::Tensor x = at::randn({2, 1, 16, 16}), t = at::tensor({20, 800}), y = at::tensor({1, 3});

  train::TrainConfig shared = tiny_config(dir, "eps", "shared");
  shared.model = dense_path.string();
  shared.steps = 30;
  shared.flexible = train::FlexibleTraining{};
  shared.flexible->flex.patch_sizes = {2, 4, 8};
  const auto shared_path = train::train_model(shared, data, false).model_path;
  LoadedModel s = load_model(shared_path, at::kCPU, at::kFloat);
  CHECK(s.info.config.flex.patch_sizes == std::vector<int>{2, 4, 8});
  CHECK(s.info.config.flex.mode == "shared");
  for (double loss : logged_losses(shared.output / "log.jsonl")) CHECK(std::isfinite(loss));
  CHECK(max_abs_diff(s.model->forward(x, t, y), dense.model->forward(x, t, y)) > 1e-4);  // everything trained
  CHECK(at::isfinite(s.model->forward(x, t, y, 2)).all().item<bool>());

  train::TrainConfig lora = tiny_config(dir, "eps", "lora");
  lora.model = dense_path.string();
  lora.steps = 30;
  lora.flexible = train::FlexibleTraining{};
  lora.flexible->flex.patch_sizes = {4, 8};
  lora.flexible->flex.mode = "lora";
  lora.flexible->flex.lora_rank = 4;
  const auto lora_path = train::train_model(lora, data, false).model_path;
  LoadedModel l = load_model(lora_path, at::kCPU, at::kFloat);
  CHECK(l.info.config.flex.lora());
  CHECK(at::equal(l.model->forward(x, t, y), dense.model->forward(x, t, y)));  // the original, bit for bit
  DiT start = make_flexible(dense.model, l.info.config.flex);
  start->eval();
  CHECK(max_abs_diff(l.model->forward(x, t, y, 8), start->forward(x, t, y, 8)) > 1e-4);  // patch 8 learned
  auto losses = logged_losses(lora.output / "log.jsonl");
  CHECK(losses.front() > 0);
  CHECK(losses.back() < losses.front());  // the weak model moves towards the frozen one

  train::TrainConfig bad = tiny_config(dir, "eps", "bad");
  bad.model = dense_path.string();
  bad.flexible = lora.flexible;
  bad.flexible->train_patches = {4};
  CHECK(test::error_message([&] { train::train_model(bad, data, false); }).find("keeps frozen") != std::string::npos);
  // A lora-mode model is its own teacher, also when the file is flexible already.
  train::TrainConfig second_teacher = tiny_config(dir, "eps", "second-teacher");
  second_teacher.model = lora_path.string();
  second_teacher.teacher = dense_path.string();
  CHECK(test::contains(test::error_message([&] { train::train_model(second_teacher, data, false); }),
                       "distills from itself"));
}

TEST_CASE("Flexible fine-tuning of a sparse model trains every patch size at the grids its tokens allow, "
          "distilled from a dense teacher",
          "[train][flexidit][sparsedit]") {
  SparseFixture f;
  auto& [dir, data, dense_path, dense, x, t, y, layout] = f;
  train::TrainConfig both = tiny_config(dir, "eps", "both");
  both.model = dense_path.string();
  both.steps = 30;
  both.sparse = layout;
  both.flexible = train::FlexibleTraining{};
  both.flexible->flex.patch_sizes = {4, 8};
  both.teacher = dense_path.string();
  const auto path = train::train_model(both, data, false).model_path;
  LoadedModel m = load_model(path, at::kCPU, at::kFloat);
  REQUIRE(m.info.config.sparse.modules == 1);
  CHECK(m.info.config.flex.patch_sizes == std::vector<int>{4, 8});
  for (double loss : logged_losses(both.output / "log.jsonl")) CHECK(std::isfinite(loss));
  DiT flexible = make_flexible(dense.model, m.info.config.flex);
  DiT start = make_sparse(flexible, layout);
  start->eval();
  at::NoGradGuard no_grad;
  for (auto [patch, grid] : std::vector<std::pair<int, int>>{{4, 1}, {4, 3}, {8, 1}, {8, 2}}) {
    INFO("patch " << patch << ", grid " << grid);
    const at::Tensor out = m.model->forward(x, t, y, patch, grid);
    CHECK(at::isfinite(out).all().item<bool>());
    CHECK(max_abs_diff(out, start->forward(x, t, y, patch, grid)) > 1e-4);  // trained
  }

  // A patch size whose token side is below the smallest grid cannot train.
  train::TrainConfig coarse = both;
  coarse.output = dir / "coarse";
  coarse.sparse->min_grid = 2;
  coarse.flexible->flex.patch_sizes = {4, 16};
  CHECK(test::contains(test::error_message([&] { train::train_model(coarse, data, false); }),
                       "patch size 16 leaves a 1-token side, below the sparse min_grid 2"));
}

TEST_CASE("Flexible training settings are read and checked", "[train][flexidit][errors]") {
  TempDir dir;
  auto write = [&](const std::string& text) {
    std::ofstream(dir / "c.yaml") << text;
    return dir / "c.yaml";
  };
  auto ok = train::load_train_config(
      write("model: DiT-S/2\nflexible: {patch_sizes: [2, 4], mode: lora, lora_rank: 8, train_patches: [4]}\n"));
  REQUIRE(ok.flexible);
  CHECK(ok.flexible->flex.patch_sizes == std::vector<int>{2, 4});
  CHECK(ok.flexible->flex.lora_rank == 8);
  CHECK(ok.flexible->train_patches == std::vector<int>{4});
  // Shared weights distil from a teacher, and combine with a sparse layout.
  auto shared = train::load_train_config(write("model: DiT-S/2\nflexible: {patch_sizes: [2, 4]}\nteacher: x.safetensors\n"
                                               "sparse: {pooling_blocks: 0, modules: 1, groups: [1, 3, 1, 1], "
                                               "min_grid: 2, max_grid: 8}\n"));
  CHECK((shared.flexible && shared.sparse && !shared.teacher.empty()));
  for (const std::string bad : {"model: DiT-S/2\nflexible: {patch_sizes: [2, 4], speed: 3}\n",
                                "model: DiT-S/2\nflexible: {mode: lora}\n", "model: DiT-S/2\nflexible: 4\n",
                                "model: DiT-S/2\nflexible: {patch_sizes: [2, 4], mode: lora}\nteacher: x.safetensors\n",
                                "model: DiT-S/2\nflexible: {patch_sizes: [2, 4]}\nlora: {targets: [qkv], rank: 4}\n"}) {
    INFO(bad);
    CHECK(error_kind([&] { train::load_train_config(write(bad)); }) == ErrorKind::Input);
  }
}

TEST_CASE("SparseDiT fine-tuning converts a dense model and trains every grid: on data, distilled, or each "
          "sample at its noise level's grid (per sample, or per batch)",
          "[train][sparsedit]") {
  SparseFixture f;
  auto& [dir, data, dense_path, dense, x, t, y, layout] = f;
  for (const std::string variant : {"data", "distilled", "timestep", "timestep-batch"}) {
    INFO(variant);
    train::TrainConfig sparse = tiny_config(dir, "eps", variant);
    sparse.model = dense_path.string();
    sparse.steps = 30;
    sparse.sparse = layout;
    if (variant == "distilled") sparse.teacher = dense_path.string();
    if (variant.rfind("timestep", 0) == 0) sparse.sparse_grids = train::parse_sparse_grids(variant);  // samples at their noise level's grid
    const auto path = train::train_model(sparse, data, false).model_path;
    LoadedModel s = load_model(path, at::kCPU, at::kFloat);
    REQUIRE(s.info.config.sparse.modules == 1);
    CHECK(s.info.config.sparse.max_grid == 3);
    for (double loss : logged_losses(sparse.output / "log.jsonl")) CHECK(std::isfinite(loss));
    DiT start = make_sparse(dense.model, layout);
    start->eval();
    at::NoGradGuard no_grad;
    for (int S : {1, 2, 3}) {
      INFO("grid " << S);
      const at::Tensor out = s.model->forward(x, t, y, 0, S);
      CHECK(at::isfinite(out).all().item<bool>());
      CHECK(max_abs_diff(out, start->forward(x, t, y, 0, S)) > 1e-4);  // trained
    }
    // The recovery's merged layers train away from W1 = 0.
    auto& recover = *s.model->sparse_modules[0]->as<nn::SparseDenseModule>()->token_recover;
    CHECK(recover.merged_layer1->weight.abs().max().item<double>() > 0);
  }
}

TEST_CASE("Sparse training settings are read and checked", "[train][sparsedit][errors]") {
  TempDir dir;
  auto write = [&](const std::string& text) {
    std::ofstream(dir / "c.yaml") << text;
    return dir / "c.yaml";
  };
  auto ok = train::load_train_config(write(
      "model: DiT-S/2\nsparse: {pooling_blocks: 1, modules: 2, groups: [1, 3, 1, 1], min_grid: 6, max_grid: 10}\n"));
  REQUIRE(ok.sparse);
  CHECK(ok.sparse->semantic == 3);
  CHECK(ok.sparse->max_grid == 10);
  CHECK(ok.to_json()["sparse"]["groups"] == nlohmann::json::array({1, 3, 1, 1}));
  for (const std::string bad :
       {"model: DiT-S/2\nsparse: {pooling_blocks: 1, modules: 2, groups: [1, 3, 1, 1], min_grid: 6}\n",
        "model: DiT-S/2\nsparse: {pooling_blocks: 1, modules: 2, groups: [2, 3, 1, 1], min_grid: 6, max_grid: 10}\n",
        "model: DiT-S/2\nsparse: {pooling_blocks: 1, modules: 2, groups: [1, 3, 1, 1], min_grid: 6, max_grid: 10, "
        "speed: 2}\n",
        "model: DiT-S/2\nsparse: 3\n",
        "model: DiT-S/2\nsparse_grids: random\n",
        "model: DiT-S/2\nsparse: {pooling_blocks: 1, modules: 2, groups: [1, 3, 1, 1], min_grid: 6, max_grid: 10}\n"
        "flexible: {patch_sizes: [2, 4]}\nsparse_grids: timestep\n"}) {
    INFO(bad);
    CHECK(error_kind([&] { train::load_train_config(write(bad)); }) == ErrorKind::Input);
  }
}

TEST_CASE("IntLoRA and QLoRA train only their adapters on a quantized model, resume exactly and write "
          "quantized files", "[train][intlora]") {
  TempDir dir;
  BarsDataset data;
  const std::filesystem::path base = trained_base(dir, data);
  train::TrainConfig teacher_run = tiny_config(dir, "eps", "teacher");
  teacher_run.model = base.string();
  teacher_run.steps = 60;
  const std::filesystem::path teacher = train::train_model(teacher_run, data, false).model_path;

  // IntLoRA-MUL at W8A8, distilled from a model trained further: the adapters move the student toward it.
  auto intlora_config = [&](const std::string& run) {
    train::TrainConfig c = tiny_config(dir, "eps", run);
    c.model = base.string();
    c.teacher = teacher.string();
    c.steps = 60;
    c.lr = 1e-2;
    c.checkpoint_every = 30;
    c.quantization = train::QuantizedTraining{8, quant::ActivationMode::DynamicPerToken};
    c.intlora = train::IntLoRATraining{quant::IntLoRAKind::Mul, 4, 4.0};
    return c;
  };
  const train::TrainConfig straight = intlora_config("intlora");
  const auto trained = train::train_model(straight, data, false);
  const auto losses = logged_losses(straight.output / "log.jsonl");
  CHECK(losses.back() < 0.7 * losses.front());
  LoadedModel merged = load_model(trained.model_path, at::kCPU, at::kFloat);
  CHECK(merged.info.quantization.label() == "W8A8");
  CHECK(merged.info.quantization.symmetry == quant::Symmetry::Symmetric);
  CHECK(merged.info.quantization.layers.size() == 8);  // 2 blocks x (qkv, proj, fc1, fc2)
  const nlohmann::json& merge = merged.info.training.at("intlora_merge");
  CHECK(merge.at("relative_error").get<double>() < 0.01);
  // Nothing but the adapters trained: the float layers equal the base model's.
  const LoadedModel start = load_model(base, at::kCPU, at::kFloat);
  CHECK(at::equal(merged.model->named_parameters()["t_embedder.mlp.0.weight"],
                  start.model->named_parameters()["t_embedder.mlp.0.weight"]));

  // Stopped at step 30 and resumed: the same merged integers as the uninterrupted run.
  const train::TrainConfig split = intlora_config("intlora-split");
  CHECK(train::train_model(split, data, false, {}, 30).model_path.empty());
  train::train_model(split, data, true);
  auto a = io::load_tensors(straight.output / "model.safetensors");
  auto b = io::load_tensors(split.output / "model.safetensors");
  REQUIRE(a.size() == b.size());
  for (const auto& [name, tensor] : a) CHECK(at::equal(tensor, b.at(name)));

  // QLoRA at W4A8: float adapters beside the fake-quantized layers, merged and re-quantized to 4 bits.
  train::TrainConfig qlora = tiny_config(dir, "eps", "qlora");
  qlora.model = base.string();
  qlora.steps = 10;
  qlora.quantization = train::QuantizedTraining{4, quant::ActivationMode::DynamicPerToken};
  qlora.lora = train::LoraOptions{{"blocks\\.[0-9]+\\.(attn\\.(qkv|proj)|mlp\\.fc[12])"}, 4, 4.0};
  LoadedModel requantized = load_model(train::train_model(qlora, data, false).model_path, at::kCPU, at::kFloat);
  CHECK(requantized.info.quantization.label() == "W4A8");
  CHECK(requantized.info.quantization.symmetry == quant::Symmetry::Asymmetric);
  const at::Tensor probe = requantized.model->forward(at::randn({2, 1, 16, 16}), at::tensor({20, 800}), at::tensor({1, 3}));
  CHECK(at::isfinite(probe).all().item<bool>());
}

TEST_CASE("Quantized training settings are read and checked", "[train][intlora][errors]") {
  TempDir dir;
  auto load = [&](const std::string& text) {
    std::ofstream(dir / "c.yaml") << "model: DiT-S/2\n" << text;
    return train::load_train_config(dir / "c.yaml");
  };
  const train::TrainConfig ok = load("quantization: {weights: 4, acts: none}\nintlora: {kind: shift, rank: 2}\n");
  CHECK(ok.quantization->weight_bits == 4);
  CHECK(ok.quantization->activations == quant::ActivationMode::None);
  CHECK(ok.intlora->kind == quant::IntLoRAKind::Shift);
  CHECK(ok.intlora->alpha == 2.0);  // alpha defaults to the rank
  for (const char* bad : {"intlora: {kind: mul}\n",                                    // no quantization
                          "quantization: {weights: 8}\n",                              // nothing to train
                          "quantization: {weights: 6}\nintlora: {}\n",                 // bits
                          "quantization: {acts: static}\nintlora: {}\n",               // activations
                          "quantization: {}\nintlora: {kind: add}\n",                  // kind
                          "quantization: {}\nintlora: {rank: 0}\n",                    // rank
                          "quantization: {bits: 8}\nintlora: {}\n",                    // unknown key
                          "quantization: {}\nintlora: {}\nlora: {targets: [x]}\n",   // both adapters
                          "subject: {word: bag}\n",                                   // a caption word
                          "subject: {renderings: 0}\n",                               // renderings
                          "subject: {index: -1}\n",                                   // index
                          "subject: {}\nvideo: {frames: 4}\n"}) {                      // not on clips
    CAPTURE(bad);
    CHECK(error_kind([&] { load(bad); }) == ErrorKind::Input);
  }
}
