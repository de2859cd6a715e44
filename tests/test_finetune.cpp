// LoRA adapters (forward, merge / unmerge / remove, dtype and device), freezing by name pattern, a
// training step that moves only the unfrozen parameters, the distillation loss, and saving a merged model.
#include <ATen/CPUGeneratorImpl.h>
#include <torch/optim/adamw.h>

#include "catch.h"
#include "ditgen/io/tensor_io.h"
#include "ditgen/models/model_file.h"
#include "ditgen/nn/lora.h"
#include "ditgen/train/finetune.h"
#include "helpers.h"

using namespace ditgen;
using ditgen::test::error_kind;
using ditgen::test::error_message;
using ditgen::test::golden;
using ditgen::test::max_abs_diff;

namespace {

const std::string kTargets = "blocks\\.[0-9]+\\.(attn\\.(qkv|proj)|mlp\\.fc[12])";

// The tiny patch-2 model (or a file saved from it) with the golden inputs.
struct Golden {
  explicit Golden(const std::filesystem::path& model = golden("tiny_p2.model.safetensors"))
      : m(load_model(model, at::kCPU, at::kFloat)) {}

  LoadedModel m;
  std::map<std::string, at::Tensor> io = io::load_tensors(golden("tiny_p2.io.safetensors"));

  at::Tensor forward() {
    at::NoGradGuard no_grad;
    return m.model->forward(io.at("x"), io.at("t"), io.at("y"));  // [B, Cout, H, W]
  }
};

std::vector<nn::LoRALinearImpl*> lora_layers(torch::nn::Module& model) {
  std::vector<nn::LoRALinearImpl*> out;
  for (const auto& module : model.modules())
    if (auto* linear = module->as<nn::LoRALinearImpl>(); linear && linear->has_lora()) out.push_back(linear);
  return out;
}

// Gives every adapter a non-zero B so that it changes the output.
void randomize_lora_B(torch::nn::Module& model, uint64_t seed) {
  at::NoGradGuard no_grad;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (auto* linear : lora_layers(model))
    linear->lora_B.copy_(at::randn(linear->lora_B.sizes(), gen) * 0.1);
}

std::map<std::string, at::Tensor> snapshot(const torch::nn::Module& model) {
  std::map<std::string, at::Tensor> out;
  for (const auto& item : model.named_parameters()) out[item.key()] = item.value().detach().clone();
  return out;
}

bool has_lora_param(const torch::nn::Module& model) {
  for (const auto& item : model.named_parameters())
    if (item.key().find("lora_") != std::string::npos) return true;
  return false;
}

}  // namespace

TEST_CASE("LoRALinear is a Linear with an optional low-rank path", "[finetune]") {
  nn::LoRALinear lin(6, 5);
  auto params = lin->named_parameters();
  CHECK(params.size() == 2);
  CHECK(params.contains("weight"));
  CHECK(params.contains("bias"));
  // dit.cpp's initialize_weights finds linears by this cast.
  std::shared_ptr<torch::nn::Module> as_module = lin.ptr();
  CHECK(as_module->as<torch::nn::Linear>() != nullptr);

  at::Tensor x = at::randn({3, 4, 6});
  at::Tensor plain = lin->forward(x);
  lin->add_lora(/*rank=*/2, /*alpha=*/3.0, /*seed=*/11);
  REQUIRE(lin->has_lora());
  CHECK(lin->rank() == 2);
  CHECK(lin->scale() == Approx(1.5));
  CHECK(lin->lora_A.sizes() == at::IntArrayRef({2, 6}));
  CHECK(lin->lora_B.sizes() == at::IntArrayRef({5, 2}));
  CHECK(lin->named_parameters().contains("lora_A"));
  CHECK(lin->lora_A.abs().max().item<double>() <= 1.0 / std::sqrt(6.0));  // nn.Linear's Kaiming bound
  CHECK(lin->lora_B.abs().max().item<double>() == 0.0);
  CHECK(max_abs_diff(lin->forward(x), plain) == 0.0);

  randomize_lora_B(*lin, 3);
  REQUIRE(lin->lora_B.abs().max().item<double>() > 0.0);
  at::Tensor expected = at::linear(x, lin->weight, lin->bias) +
                        1.5 * at::matmul(at::matmul(x, lin->lora_A.t()), lin->lora_B.t());
  CHECK(max_abs_diff(lin->forward(x), expected) <= 1e-6);

  SECTION("the same seed draws the same A, another seed another") {
    nn::LoRALinear same(6, 5), other(6, 5);
    same->add_lora(2, 3.0, 11);
    other->add_lora(2, 3.0, 12);
    CHECK(at::equal(same->lora_A, lin->lora_A));
    CHECK_FALSE(at::equal(other->lora_A, lin->lora_A));
  }
  SECTION("remove_lora without merging restores the plain layer") {
    lin->remove_lora();
    CHECK_FALSE(lin->has_lora());
    CHECK(lin->named_parameters().size() == 2);
    CHECK(max_abs_diff(lin->forward(x), plain) == 0.0);
  }
  SECTION("misuse is a usage error") {
    CHECK(error_kind([&] { lin->add_lora(2, 1.0, 0); }) == ErrorKind::Usage);
    nn::LoRALinear fresh(6, 5);
    CHECK(error_kind([&] { fresh->add_lora(0, 1.0, 0); }) == ErrorKind::Usage);
    CHECK(error_kind([&] { fresh->merge(); }) == ErrorKind::Usage);
  }
}

TEST_CASE("LoRA adapters follow the module's dtype and device and merge works in bf16", "[finetune]") {
  nn::LoRALinear lin(16, 8);
  lin->to(at::kBFloat16);
  lin->add_lora(4, 4.0, 5);
  CHECK(lin->lora_A.scalar_type() == at::kBFloat16);
  CHECK(lin->lora_B.scalar_type() == at::kBFloat16);
  randomize_lora_B(*lin, 9);
  at::Tensor x = at::randn({2, 16}).to(at::kBFloat16);
  at::Tensor unmerged = lin->forward(x);
  const at::Tensor before = lin->weight.detach().clone();
  lin->merge();
  CHECK(lin->merged());
  CHECK_FALSE(at::equal(lin->weight, before));
  CHECK(max_abs_diff(lin->forward(x), unmerged) <= 0.05);  // bf16 rounding of weight and activations
  lin->unmerge();
  CHECK(max_abs_diff(lin->weight, before) <= 0.02);  // one bf16 rounding each way

  lin->to(at::kDouble);
  CHECK(lin->lora_A.scalar_type() == at::kDouble);
  CHECK(lin->lora_B.scalar_type() == at::kDouble);
  CHECK(lin->lora_A.requires_grad());
}

TEST_CASE("LoRA on the DiT's attention and MLP linears: init, merge, unmerge", "[finetune]") {
  Golden g;
  const at::Tensor base = g.forward();
  const auto before = snapshot(*g.m.model);
  const int depth = g.m.info.config.depth;

  REQUIRE(train::add_lora(*g.m.model, {kTargets}, /*rank=*/4, /*alpha=*/8.0, /*seed=*/1) == 4 * depth);
  auto params = g.m.model->named_parameters();
  const int64_t D = g.m.info.config.hidden_size;
  REQUIRE(params.contains("blocks.0.attn.qkv.lora_A"));
  CHECK(params["blocks.0.attn.qkv.lora_A"].sizes() == at::IntArrayRef({4, D}));
  CHECK(params["blocks.0.attn.qkv.lora_B"].sizes() == at::IntArrayRef({3 * D, 4}));
  CHECK(params.contains("blocks.0.mlp.fc2.lora_B"));
  CHECK_FALSE(params.contains("final_layer.linear.lora_A"));
  CHECK(static_cast<int>(params.size()) == static_cast<int>(before.size()) + 8 * depth);
  // B = 0: exactly the base model.
  CHECK(max_abs_diff(g.forward(), base) == 0.0);

  randomize_lora_B(*g.m.model, 2);
  const at::Tensor adapted = g.forward();
  CHECK(max_abs_diff(adapted, base) > 1e-3);

  train::merge_lora(*g.m.model);
  const at::Tensor merged = g.forward();
  INFO("merged vs unmerged max abs diff " << max_abs_diff(merged, adapted));
  CHECK(max_abs_diff(merged, adapted) <= 1e-5);
  CHECK(max_abs_diff(g.m.model->named_parameters()["blocks.1.mlp.fc1.weight"], before.at("blocks.1.mlp.fc1.weight")) >
        1e-4);
  train::merge_lora(*g.m.model);  // already merged: nothing happens
  CHECK(max_abs_diff(g.forward(), merged) == 0.0);

  train::unmerge_lora(*g.m.model);
  for (const auto& [name, value] : before) {
    INFO(name);
    CHECK(max_abs_diff(g.m.model->named_parameters()[name], value) <= 1e-6);
  }
  CHECK(max_abs_diff(g.forward(), adapted) <= 1e-5);
}

TEST_CASE("Freezing by pattern leaves only the adapters trainable, and a step moves only them", "[finetune]") {
  Golden g;
  const at::Tensor teacher = g.forward();
  const int n = train::add_lora(*g.m.model, {kTargets}, 4, 4.0, 3);
  randomize_lora_B(*g.m.model, 4);  // with B = 0, A would get no gradient
  const int total = static_cast<int>(g.m.model->named_parameters().size());

  // std::regex's ECMAScript grammar has negative lookahead: everything whose name has no "lora_".
  CHECK(train::freeze_parameters(*g.m.model, {"(?!.*lora_).*"}) == total - 2 * n);
  const auto trainable = train::trainable_parameter_names(*g.m.model);
  CHECK(static_cast<int>(trainable.size()) == 2 * n);
  for (const auto& name : trainable) CHECK(name.find(".lora_") != std::string::npos);

  const auto before = snapshot(*g.m.model);
  g.m.model->train();
  torch::optim::AdamW opt(g.m.model->parameters(), torch::optim::AdamWOptions(1e-3));
  at::Tensor student = g.m.model->forward(g.io.at("x"), g.io.at("t"), g.io.at("y"));  // [B, 8, H, W]
  at::Tensor loss = train::distillation_loss(student, teacher, g.m.info.config.in_channels);
  REQUIRE(loss.item<double>() > 0.0);
  opt.zero_grad();
  loss.backward();
  opt.step();

  auto after = g.m.model->named_parameters();
  for (const auto& [name, value] : before) {
    INFO(name);
    if (name.find(".lora_") != std::string::npos) {
      CHECK_FALSE(at::equal(after[name], value));
    } else {
      CHECK(at::equal(after[name], value));
      CHECK_FALSE(after[name].grad().defined());
    }
  }

  SECTION("several patterns, each matched in full") {
    Golden h;
    // "attn" alone matches no full name; the block pattern freezes qkv and proj weight and bias.
    CHECK(train::freeze_parameters(*h.m.model, {"attn", "blocks\\.0\\.attn\\..*"}) == 4);
    CHECK(train::freeze_parameters(*h.m.model, {}) == 0);
  }
}

TEST_CASE("Fine-tuning misuse is a usage error", "[finetune][errors]") {
  Golden g;
  SECTION("an invalid regex is named") {
    CHECK(error_kind([&] { train::freeze_parameters(*g.m.model, {"blocks\\.(["}); }) == ErrorKind::Usage);
    CHECK(test::contains(error_message([&] { train::freeze_parameters(*g.m.model, {"blocks\\.(["}); }),
                         "'blocks\\.(['"));
    CHECK(error_kind([&] { train::add_lora(*g.m.model, {"*qkv"}, 4, 4.0, 0); }) == ErrorKind::Usage);
  }
  SECTION("targets that match no LoRA-capable linear list some that exist") {
    const std::string message =
        error_message([&] { train::add_lora(*g.m.model, {"final_layer\\.linear"}, 4, 4.0, 0); });
    CHECK(test::contains(message, "final_layer\\.linear"));
    CHECK(test::contains(message, "blocks.0.attn.qkv"));
    CHECK(error_kind([&] { train::add_lora(*g.m.model, {}, 4, 4.0, 0); }) == ErrorKind::Usage);
    CHECK_FALSE(has_lora_param(*g.m.model));
  }
  SECTION("a second adapter on one layer is named") {
    train::add_lora(*g.m.model, {"blocks\\.0\\.attn\\.qkv"}, 4, 4.0, 0);
    const std::string message = error_message([&] { train::add_lora(*g.m.model, {kTargets}, 4, 4.0, 0); });
    CHECK(test::contains(message, "blocks.0.attn.qkv"));
  }
  SECTION("distillation needs matching shapes and a valid channel count") {
    at::Tensor a = at::zeros({1, 4, 2, 2});
    CHECK(error_kind([&] { train::distillation_loss(a, at::zeros({1, 8, 2, 2}), 4); }) == ErrorKind::Usage);
    CHECK(error_kind([&] { train::distillation_loss(a, a, 0); }) == ErrorKind::Usage);
    CHECK(error_kind([&] { train::distillation_loss(a, a, 5); }) == ErrorKind::Usage);
  }
}

TEST_CASE("distillation_loss is the MSE over the leading channels with a detached teacher", "[finetune]") {
  at::Tensor student = at::tensor({1.0, 2.0, 30.0, 40.0}).view({1, 4, 1, 1}).requires_grad_(true);
  at::Tensor teacher = at::zeros({1, 4, 1, 1}).requires_grad_(true);
  CHECK(train::distillation_loss(student, student.detach().clone(), 2).item<double>() == 0.0);
  at::Tensor loss = train::distillation_loss(student, teacher, 2);
  CHECK(loss.item<double>() == Approx((1.0 + 4.0) / 2));
  loss.backward();
  // d/ds mean((s - t)^2) over 2 elements = s - t on the leading channels, nothing on the others.
  CHECK(max_abs_diff(student.grad().flatten(), at::tensor({1.0, 2.0, 0.0, 0.0}, at::kFloat)) <= 1e-7);
  CHECK_FALSE(teacher.grad().defined());
  CHECK(train::distillation_loss(student.to(at::kBFloat16), teacher.to(at::kBFloat16), 4).scalar_type() ==
        at::kFloat);
}

TEST_CASE("A merged, removed LoRA saves as a plain model with the adapted outputs", "[finetune][model]") {
  test::TempDir dir;
  Golden g;
  train::add_lora(*g.m.model, {kTargets}, 4, 8.0, 5);
  randomize_lora_B(*g.m.model, 6);
  const at::Tensor adapted = g.forward();

  SECTION("attached adapters make a file that load_model refuses") {
    save_model(dir / "with_lora.safetensors", g.m.model, g.m.info);
    std::string message = error_message([&] { load_model(dir / "with_lora.safetensors", at::kCPU, at::kFloat); });
    CHECK(test::contains(message, "lora_"));
  }
  SECTION("merge, remove, save, load") {
    train::merge_lora(*g.m.model);
    train::remove_lora(*g.m.model);
    CHECK_FALSE(has_lora_param(*g.m.model));
    CHECK(lora_layers(*g.m.model).empty());
    CHECK(max_abs_diff(g.forward(), adapted) <= 1e-5);  // the merged weights stay
    save_model(dir / "merged.safetensors", g.m.model, g.m.info);
    Golden reloaded(dir / "merged.safetensors");
    CHECK(max_abs_diff(reloaded.forward(), adapted) <= 1e-5);
  }
}

TEST_CASE("initialize_weights still reaches the LoRA-capable linears", "[finetune]") {
  DiT model(official_config("DiT-S/8"));
  model->initialize_weights();
  // nn.Linear's default bias is uniform non-zero; the official initialisation zeroes it.
  auto* block = model->blocks[0]->as<nn::DiTBlock>();
  for (const at::Tensor& bias : {block->attn->qkv->bias, block->attn->proj->bias, block->mlp->fc1->bias,
                                 block->mlp->fc2->bias})
    CHECK(bias.abs().max().item<double>() == 0.0);
}
