// The dense DiT against golden tensors from our PyTorch reference (scripts/make_golden.py), FLOP and
// parameter counts, and model-file validation.
#include <nlohmann/json.hpp>

#include "catch.h"
#include "ditgen/core/device.h"
#include "ditgen/io/tensor_io.h"
#include "ditgen/models/cost.h"
#include "ditgen/models/model_file.h"
#include "ditgen/pipeline/cost_report.h"
#include "helpers.h"

using namespace ditgen;
using ditgen::test::golden;
using ditgen::test::max_abs_diff;

namespace {

void check_forward(const std::string& name) {
  LoadedModel m = load_model(golden(name + ".model.safetensors"), at::kCPU, at::kFloat);
  auto io = io::load_tensors(golden(name + ".io.safetensors"));
  at::NoGradGuard no_grad;
  const DiTConfig& c = m.info.config;
  for (std::string suffix : {"", "_alt"}) {
    const at::Tensor& x = io.at("x" + suffix);
    at::Tensor out = m.model->forward(x, io.at("t" + suffix), io.at("y" + suffix));
    INFO(name << suffix << " forward max abs error " << max_abs_diff(out, io.at("out" + suffix)));
    CHECK(max_abs_diff(out, io.at("out" + suffix)) <= 1e-5);
    const int gh = static_cast<int>(x.size(2)) / c.patch_size, gw = static_cast<int>(x.size(3)) / c.patch_size;
    CHECK(max_abs_diff(nn::sincos_pos_embed_2d(c.hidden_size, gh, gw), io.at("pos_embed" + suffix)) <= 1e-6);
  }
  if (io.count("t_float")) {
    at::Tensor out = m.model->forward(io.at("x"), io.at("t_float"), io.at("y"));
    CHECK(max_abs_diff(out, io.at("out_float")) <= 1e-5);
  }
}

// Writes `tensors` with the metadata of a golden model, for corrupting one thing at a time.
std::filesystem::path write_variant(const test::TempDir& dir, std::map<std::string, at::Tensor> tensors,
                                    io::Metadata meta) {
  std::vector<std::pair<std::string, at::Tensor>> list(tensors.begin(), tensors.end());
  auto path = dir / "variant.safetensors";
  io::save_tensors(path, list, meta);
  return path;
}

ErrorKind load_error(const std::filesystem::path& path, std::string& message) {
  try {
    load_model(path, at::kCPU, at::kFloat);
  } catch (const Error& e) {
    message = e.what();
    return e.kind();
  }
  return ErrorKind::Runtime;  // loaded: not what the caller expects
}

}  // namespace

TEST_CASE("DiT forward matches the PyTorch reference", "[model][golden]") {
  SECTION("patch 2, learned sigma, 4 channels") { check_forward("tiny_p2"); }
  SECTION("patch 2, fixed sigma, no null class, non-square") { check_forward("tiny_p2_fixed"); }
  SECTION("patch 4, flow objective, non-square, fractional timesteps") { check_forward("tiny_p4_rect"); }
}

TEST_CASE("GFLOPs follow the DiT papers' MAC convention", "[model]") {
  const DiTConfig xl2 = official_config("DiT-XL/2");
  CHECK(dit_gflops(xl2, 32, 32) == Approx(118.6).margin(0.05));
  CHECK(dit_gflops(xl2, 64, 64) == Approx(524.6).margin(0.2));
  CHECK(dit_gflops(official_config("dit-s/8"), 32, 32) == Approx(0.36).margin(0.01));
  CHECK(dit_gflops(official_config("DiT-B/4"), 32, 32) == Approx(5.56).margin(0.05));
}

TEST_CASE("Parameter counts equal the built modules' and the official table's", "[model]") {
  for (const std::string name : {"DiT-S/2", "DiT-B/4", "DiT-S/8"}) {
    DiTConfig c = official_config(name);
    DiT model(c);
    int64_t numel = 0;
    for (const auto& p : model->parameters()) numel += p.numel();
    CHECK(dit_parameter_count(c) == numel);
  }
  // The official DiT-XL/2 has 675M parameters, 0.3M of them the fixed positions we do not store.
  CHECK(dit_parameter_count(official_config("DiT-XL/2")) == Approx(674.8e6).margin(0.1e6));
}

TEST_CASE("Unknown registry names list the known ones", "[model]") {
  try {
    official_config("DiT-M/2");
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::Usage);
    CHECK(std::string(e.what()).find("DiT-XL/2") != std::string::npos);
  }
}

TEST_CASE("Model files are validated", "[model][errors]") {
  test::TempDir dir;
  const auto source = golden("tiny_p2.model.safetensors");
  auto tensors = io::load_tensors(source);
  const io::Metadata meta = io::SafetensorsFile::open(source).metadata();
  std::string message;

  SECTION("a missing tensor is named") {
    tensors.erase("blocks.1.mlp.fc2.weight");
    CHECK(load_error(write_variant(dir, tensors, meta), message) == ErrorKind::Model);
    CHECK(message.find("missing tensors: blocks.1.mlp.fc2.weight") != std::string::npos);
  }
  SECTION("a wrong shape is named") {
    tensors["final_layer.linear.bias"] = at::zeros({3});
    CHECK(load_error(write_variant(dir, tensors, meta), message) == ErrorKind::Model);
    CHECK(message.find("final_layer.linear.bias") != std::string::npos);
  }
  SECTION("an unexpected tensor is refused") {
    tensors["blocks.7.attn.qkv.weight"] = at::zeros({1});
    CHECK(load_error(write_variant(dir, tensors, meta), message) == ErrorKind::Model);
    CHECK(message.find("unexpected tensor 'blocks.7.attn.qkv.weight'") != std::string::npos);
  }
  SECTION("integer weights are refused") {
    tensors["final_layer.linear.bias"] = tensors["final_layer.linear.bias"].to(at::kInt);
    CHECK(load_error(write_variant(dir, tensors, meta), message) == ErrorKind::Model);
  }
  SECTION("a file without ditgen metadata is not a model") {
    CHECK(load_error(write_variant(dir, tensors, {}), message) == ErrorKind::Model);
    CHECK(message.find("not a ditgen model") != std::string::npos);
  }
  SECTION("a malformed config is refused") {
    io::Metadata bad = meta;
    bad["ditgen.config"] = R"({"depth": 2, "hidden_size": 64, "num_heads": 5, "patch_size": 2, "in_channels": 4,
                               "input_size": [8, 8], "num_classes": 10})";
    CHECK(load_error(write_variant(dir, tensors, bad), message) == ErrorKind::Model);
    CHECK(message.find("num_heads") != std::string::npos);
  }
  SECTION("a config asking for more weights than the file holds is refused before allocating") {
    io::Metadata huge = meta;
    huge["ditgen.config"] = R"({"depth": 256, "hidden_size": 16384, "num_heads": 16, "patch_size": 2,
                                "in_channels": 4, "input_size": [8, 8], "num_classes": 10})";
    CHECK(load_error(write_variant(dir, tensors, huge), message) == ErrorKind::Model);  // 1.2e12 parameters
    CHECK(message.find("parameters but the file holds only") != std::string::npos);
  }
  SECTION("a truncated file is refused") {
    auto path = dir / "cut.safetensors";
    std::filesystem::copy_file(source, path);
    std::filesystem::resize_file(path, std::filesystem::file_size(path) / 2);
    CHECK(load_error(path, message) == ErrorKind::Model);
    CHECK(message.find("cut.safetensors") != std::string::npos);
  }
  SECTION("a missing file is a model error") {
    CHECK(load_error(dir / "absent.safetensors", message) == ErrorKind::Model);
  }
}

TEST_CASE("save_model and load_model round-trip weights and metadata", "[model]") {
  test::TempDir dir;
  LoadedModel m = load_model(golden("tiny_p4_rect.model.safetensors"), at::kCPU, at::kFloat);
  save_model(dir / "copy.safetensors", m.model, m.info, at::kBFloat16);
  LoadedModel copy = load_model(dir / "copy.safetensors", at::kCPU, at::kFloat);
  CHECK(copy.info.class_names == m.info.class_names);
  CHECK(copy.info.config.patch_size == 4);
  CHECK(copy.info.config.objective == Objective::Flow);
  auto a = m.model->named_parameters(), b = copy.model->named_parameters();
  for (const auto& item : a) CHECK(max_abs_diff(item.value(), b[item.key()]) <= 1e-2);  // bf16 rounding
}

TEST_CASE("Class prompts resolve by name, case-insensitively, or by id", "[model]") {
  ModelInfo info = model_spec(std::string(DITGEN_TEST_DATA) + "/../../configs/models/fmnist-tiny.yaml");
  CHECK(info.resolve_class("Sneaker") == 7);
  CHECK(info.resolve_class("  ANKLE BOOT ") == 9);
  CHECK(info.resolve_class("3") == 3);
  CHECK(info.class_label(7) == "Sneaker");
  for (const std::string bad : {"sandals", "10", "-1", ""}) {
    try {
      info.resolve_class(bad);
      FAIL("accepted '" << bad << "'");
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::Usage);
      CHECK(std::string(e.what()).find("T-shirt/top, Trouser") != std::string::npos);
    }
  }
}

TEST_CASE("The cost report counts a model's forward, steps and image from its description", "[model]") {
  const ModelInfo xl2 = model_spec("DiT-XL/2");
  CostQuery q;
  q.steps = 10;
  q.cfg_scale = 1;
  CostReport r = cost_report(xl2, q);
  CHECK((r.height == 32 && r.width == 32));
  CHECK(r.tokens == 256);
  CHECK(r.parameters == dit_parameter_count(xl2.config));
  CHECK(r.gflops_per_forward == Approx(118.6).margin(0.05));
  CHECK_FALSE(r.guided);
  REQUIRE(r.gflops_per_step.size() == 10);
  CHECK(r.gflops_per_step[3] == Approx(r.gflops_per_forward));
  CHECK(r.gflops_per_image == Approx(10 * r.gflops_per_forward));
  CHECK(r.dense_gflops_per_image == Approx(r.gflops_per_image));
  CHECK(r.schedule == "dense");
  q.cfg_scale = 4;
  q.height = q.width = 64;
  r = cost_report(xl2, q);
  CHECK(r.guided);
  CHECK(r.gflops_per_step[0] == Approx(2 * 524.6).margin(0.4));
  const nlohmann::json j = r.to_json();
  CHECK(j["size"] == nlohmann::json({64, 64}));
  CHECK(j["generation"]["fraction_of_dense"].get<double>() == Approx(1.0));
  CHECK_FALSE(j.contains("gflops_per_forward_by_patch"));
  q.height = -2;
  CHECK(test::error_kind([&] { cost_report(xl2, q); }) == ErrorKind::Usage);
  q.height = 64;
  q.steps = 5000;  // more than the model's 1000 diffusion steps
  CHECK(test::error_kind([&] { cost_report(xl2, q); }) == ErrorKind::Usage);
}

TEST_CASE("Devices and dtypes parse as users name them and auto means bf16 on CUDA and fp32 elsewhere", "[model]") {
  CHECK(parse_device("cpu") == at::Device(at::kCPU));
  CHECK(test::error_kind([] { parse_device("tpu"); }) == ErrorKind::Usage);
  CHECK(resolve_dtype("auto", at::Device(at::kCPU)) == at::kFloat);
  CHECK(resolve_dtype("auto", at::Device(at::kCUDA, 0)) == at::kBFloat16);  // no GPU needed to name one
  CHECK(resolve_dtype("fp16", at::Device(at::kCPU)) == at::kHalf);
  CHECK(resolve_dtype("bfloat16", at::Device(at::kCUDA, 0)) == at::kBFloat16);
  CHECK(test::error_kind([] { resolve_dtype("int8", at::Device(at::kCPU)); }) == ErrorKind::Usage);
  CHECK(test::error_kind([] { parse_dtype("auto"); }) == ErrorKind::Usage);  // a rule, not a dtype
  CHECK(dtype_label(resolve_dtype("bf16", at::Device(at::kCPU))) == "bf16");
}
