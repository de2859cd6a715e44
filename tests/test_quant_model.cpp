// Quantized DiT models: which layers quantize, the integer forward against its fake-quant float twin and
// against the float model, model files (round trip, sizes, every malformed file refused) and the CLI's
// quantize / generate / info.
#include <cmath>
#include <functional>
#include <limits>

#include <nlohmann/json.hpp>

#include "catch.h"
#include "ditgen/io/safetensors.h"
#include "ditgen/io/tensor_io.h"
#include "ditgen/models/model_file.h"
#include "ditgen/pipeline/calibration.h"
#include "ditgen/quant/quantize_model.h"
#include "ditgen/quant/quantized_tensors.h"
#include "ditgen/text/tokenizer.h"
#include "helpers.h"

using namespace ditgen;
using namespace ditgen::quant;
using ditgen::test::contains;
using ditgen::test::error_kind;
using ditgen::test::error_message;
using ditgen::test::golden;

namespace {

LoadedModel text_model(const std::string& kind = "dit") {
  return load_model(golden("tiny_text_" + kind + ".model.safetensors"), at::kCPU, at::kFloat);
}

// Two noisy images, timesteps and prompts for a tiny text model.
struct Inputs {
  at::Tensor x, t, y;
};
Inputs inputs_for(const DiTConfig& c) {
  at::Generator gen = at::detail::createCPUGenerator(5);
  const text::Tokenizer tok(c.text);
  return {at::randn({2, c.in_channels, c.input_height, c.input_width}, gen),
          at::tensor({500.0f, 40.0f}),
          at::stack({tok.padded(tok.encode(c.text.vocabulary[1]).ids), tok.padded(tok.encode("").ids)})};
}

at::Tensor run(LoadedModel& m, const Inputs& in) {
  c10::InferenceMode guard;
  return m.model->forward(in.x, in.t, in.y);  // [2, Cout, H, W]
}

double relative_error(const at::Tensor& value, const at::Tensor& truth) {
  return (value - truth).norm().item<double>() / truth.norm().item<double>();
}

// Every quantized layer runs its fake-quant float twin from now on.
void use_references(LoadedModel& m) {
  for (auto& [name, linear] : quantizable_layers(m.model)) linear->quantized->use_reference(true);
}

}  // namespace

TEST_CASE("quantization takes every attention and MLP projection of the blocks and drops their float weights",
          "[quant][quant_model]") {
  LoadedModel dense = text_model("dit");
  const int depth = dense.info.config.depth;
  std::vector<std::string> names;
  for (const auto& [name, linear] : quantizable_layers(dense.model)) names.push_back(name);
  CHECK(names.size() == static_cast<size_t>(depth * 7));  // attn qkv, proj; text_cross q, kv, proj; fc1, fc2
  CHECK(names.front() == "blocks.0.attn.qkv");
  CHECK(std::find(names.begin(), names.end(), "blocks.0.text_cross.kv") != names.end());
  for (const auto& n : names) CHECK(!contains(n, "adaLN"));

  LoadedModel proxy = text_model("ptdit");
  std::vector<std::string> proxy_names;
  for (const auto& [name, linear] : quantizable_layers(proxy.model)) proxy_names.push_back(name);
  // Per block: proxy, window and shifted attention (2 each), proxy and text cross-attention (3 each), MLP (2).
  CHECK(proxy_names.size() == static_cast<size_t>(proxy.info.config.depth * 14));
  for (const char* layer : {"proxy_blocks.0.proxy_cross.q", "proxy_blocks.0.window_attn.qkv",
                            "proxy_blocks.0.shifted_attn.proj", "proxy_blocks.0.text_cross.proj", "proxy_blocks.0.mlp.fc2"})
    CHECK(std::find(proxy_names.begin(), proxy_names.end(), layer) != proxy_names.end());
  for (const auto& n : proxy_names) CHECK(!n.starts_with("text_encoder."));
  // A class-conditional DiffuSSM quantizes the six dense layers of each block's hourglass; its SSMs stay float.
  LoadedModel ssm = load_model(golden("tiny_diffussm.model.safetensors"), at::kCPU, at::kFloat);
  std::vector<std::string> ssm_names;
  for (const auto& [name, linear] : quantizable_layers(ssm.model)) ssm_names.push_back(name);
  CHECK(ssm_names.size() == static_cast<size_t>(ssm.info.config.depth * 6));
  for (const char* layer : {"ssm_blocks.0.compress", "ssm_blocks.0.expand", "ssm_blocks.0.contract",
                            "ssm_blocks.0.gate", "ssm_blocks.0.mix", "ssm_blocks.0.out"})
    CHECK(std::find(ssm_names.begin(), ssm_names.end(), layer) != ssm_names.end());
  {
    at::manual_seed(5);
    const DiTConfig& c = ssm.info.config;
    const at::Tensor in = at::randn({2, c.in_channels, c.input_height, c.input_width});
    const at::Tensor t = at::tensor({10, 500}), y = at::tensor({1, 3});
    at::NoGradGuard no_grad;
    const at::Tensor truth = ssm.model->forward_reference(in, t, y);
    quantize_model(ssm.model, 8, Symmetry::Asymmetric, ActivationMode::DynamicPerToken);
    const at::Tensor out = ssm.model->forward_reference(in, t, y);
    for (auto& [name, linear] : quantizable_layers(ssm.model)) linear->quantized->use_reference(true);
    CHECK(relative_error(out, ssm.model->forward_reference(in, t, y)) < 1e-5);  // integer path = its fake-quant twin
    // W8A8 near the float model: measured 2.7e-2 on this random 32-wide model, whose hourglass layers see
    // 64-wide tokens quantized per token and feed the SSMs and GELUs.
    CHECK(relative_error(out, truth) < 5e-2);
  }

  const int64_t float_parameters = test::parameter_count(*dense.model);
  const ModelQuantization q = quantize_model(dense.model, 8, Symmetry::Asymmetric, ActivationMode::DynamicPerToken);
  CHECK(q.layers == names);
  CHECK(q.label() == "W8A8");
  int64_t quantized_weights = 0;
  for (const auto& [name, linear] : quantizable_layers(dense.model)) {
    CHECK(!linear->weight.defined());
    CHECK(!linear->is_plain_linear());
    quantized_weights += linear->options.in_features() * linear->options.out_features() + linear->options.out_features();
  }
  for (const auto& item : dense.model->named_parameters()) CHECK(!contains(item.key(), ".attn.qkv."));
  CHECK(test::parameter_count(*dense.model) == float_parameters - quantized_weights);
  CHECK(error_kind([&] { quantize_model(dense.model, 8, Symmetry::Asymmetric, ActivationMode::None); }) == ErrorKind::Usage);
  CHECK(error_kind([&] { quantizable_layers(dense.model)[0].second->add_intlora({}); }) == ErrorKind::Usage);
  CHECK(error_kind([&] { quantizable_layers(dense.model)[0].second->quantized->to(at::kInt); }) == ErrorKind::Usage);
  // Where quantized models run: the CPU in fp32; CUDA in fp32, bf16 or fp16.
  CHECK(error_kind([&] { require_quantized_device(at::Device(at::kCPU), at::kBFloat16); }) == ErrorKind::Usage);
  CHECK(error_kind([&] { require_quantized_device(at::Device(at::kCUDA), at::kDouble); }) == ErrorKind::Usage);
  CHECK(error_kind([&] { require_quantized_device(at::Device(at::kMeta), at::kFloat); }) == ErrorKind::Usage);
  require_quantized_device(at::Device(at::kCUDA), at::kBFloat16);
  require_quantized_device(at::Device(at::kCPU), at::kFloat);

  LoadedModel adapted = text_model("dit");
  quantizable_layers(adapted.model)[3].second->add_lora(2, 1.0, 0);
  CHECK(error_kind([&] { quantize_model(adapted.model, 8, Symmetry::Asymmetric, ActivationMode::None); }) == ErrorKind::Usage);
  CHECK(!quantizable_layers(adapted.model)[0].second->is_quantized());  // refused before any layer changed
  for (int bits : {3, 16})
    CHECK(error_kind([&] { quantize_model(adapted.model, bits, Symmetry::Symmetric, ActivationMode::None); }) == ErrorKind::Usage);
  CHECK(error_kind([&] { quantize_model(adapted.model, 8, Symmetry::Symmetric, ActivationMode::StaticPerTensor); }) ==
        ErrorKind::Usage);
  LoadedModel half = text_model("dit");
  half.model->to(at::kBFloat16);  // weights are quantized from float32: the model must be float32 first
  CHECK(error_kind([&] { quantize_model(half.model, 8, Symmetry::Asymmetric, ActivationMode::None); }) == ErrorKind::Usage);
  CHECK(!quantizable_layers(half.model)[0].second->is_quantized());
}

TEST_CASE("a quantized model computes its layers' fake-quant float twins, and 8 bits stay close to float",
          "[quant][quant_model]") {
  for (const char* kind : {"dit", "ptdit", "sparsedit", "diffussm"}) {
    CAPTURE(kind);
    LoadedModel float_model = text_model(kind);
    const Inputs in = inputs_for(float_model.info.config);
    const at::Tensor truth = run(float_model, in);
    std::map<int, double> error_by_bits;
    for (int bits : {8, 4}) {
      for (const ActivationMode mode : {ActivationMode::DynamicPerToken, ActivationMode::None}) {
        CAPTURE(bits, activation_mode_name(mode));
        LoadedModel m = text_model(kind);
        quantize_model(m.model, bits, Symmetry::Asymmetric, mode);
        const at::Tensor out = run(m, in);
        use_references(m);
        const at::Tensor reference = run(m, in);
        if (mode == ActivationMode::None) {
          // Weight-only: the float model with the dequantized weights, exactly.
          LoadedModel dequantized = text_model(kind);
          {
            at::NoGradGuard no_grad;
            auto plain = quantizable_layers(dequantized.model);
            const auto quantized = quantizable_layers(m.model);  // the same layers in the same order
            for (size_t i = 0; i < plain.size(); ++i)
              plain[i].second->weight.copy_(dequantize(quantized[i].second->quantized->quantized_weight()));
          }
          CHECK(out.equal(run(dequantized, in)));
          CHECK(out.equal(reference));
        } else {
          // Integer GEMM vs fake-quant float: equal up to float rounding, which may move a rounding of the
          // next layer's activations by one step now and then (measured 6e-8 .. 2.1e-6).
          CHECK(relative_error(out, reference) < 1e-5);
          error_by_bits[bits] = relative_error(out, truth);
        }
      }
    }
    // Relative to the float model's output, measured (dense, PT-DiT, SparseDiT, DiffuSSM): W8A8 5.9e-4, 1.9e-3,
    // 6.8e-4, 5.0e-4; W4A8 5.4e-3, 1.9e-2, 5.7e-3, 7.7e-3.
    CHECK(error_by_bits[8] < 5e-3);
    CHECK(error_by_bits[4] > 4 * error_by_bits[8]);
    CHECK(error_by_bits[4] < 5e-2);
  }
}

namespace {

// A quantized copy of the tiny text model saved in `dir`; returns its path.
std::filesystem::path save_quantized(const test::TempDir& dir, const std::string& name, int bits, Symmetry symmetry) {
  LoadedModel m = text_model();
  m.info.quantization = quantize_model(m.model, bits, symmetry, ActivationMode::DynamicPerToken);
  const std::filesystem::path path = dir / name;
  save_model(path, m.model, m.info);
  return path;
}

int64_t value_bytes(const std::filesystem::path& path) {
  int64_t bytes = 0;
  const io::SafetensorsFile file = io::SafetensorsFile::open(path);
  for (const io::TensorView& view : file.tensors())
    if (view.name.ends_with(".weight_values")) bytes += static_cast<int64_t>(view.nbytes);
  return bytes;
}

// Rewrites a model file with `change` applied to its tensors and metadata.
using Tensors = std::map<std::string, at::Tensor>;
std::filesystem::path rewritten(const std::filesystem::path& from, const std::filesystem::path& to,
                                const std::function<void(Tensors&, nlohmann::json&)>& change) {
  Tensors tensors = io::load_tensors(from);
  io::Metadata meta = io::SafetensorsFile::open(from).metadata();
  nlohmann::json q = nlohmann::json::parse(meta.at("ditgen.quant"));
  change(tensors, q);
  meta["ditgen.quant"] = q.dump();
  std::vector<std::pair<std::string, at::Tensor>> list(tensors.begin(), tensors.end());
  io::save_tensors(to, list, meta);
  return to;
}

}  // namespace

TEST_CASE("quantized model files round-trip their integers exactly, and 4-bit values take half the bytes",
          "[quant][quant_model][model_file]") {
  test::TempDir dir;
  for (const auto& [bits, symmetry, mode] : {std::tuple{8, Symmetry::Asymmetric, ActivationMode::DynamicPerToken},
                                             std::tuple{4, Symmetry::Symmetric, ActivationMode::None}}) {
    CAPTURE(bits);
    LoadedModel m = text_model();
    m.info.quantization = quantize_model(m.model, bits, symmetry, mode);
    const std::filesystem::path path = dir / ("w" + std::to_string(bits) + ".safetensors");
    save_model(path, m.model, m.info);
    LoadedModel back = load_model(path, at::kCPU, at::kFloat);
    CHECK(back.info.quantization.layers == m.info.quantization.layers);
    CHECK(back.info.quantization.weight_bits == bits);
    CHECK(back.info.quantization.symmetry == symmetry);
    CHECK(back.info.quantization.activations == mode);
    const auto saved = quantizable_layers(m.model), loaded = quantizable_layers(back.model);
    REQUIRE(saved.size() == loaded.size());
    for (size_t i = 0; i < saved.size(); ++i) {
      const QuantizedWeight a = saved[i].second->quantized->quantized_weight();
      const QuantizedWeight b = loaded[i].second->quantized->quantized_weight();
      CHECK(a.values.equal(b.values));
      CHECK(a.scales.equal(b.scales));
      CHECK(a.zero_points.equal(b.zero_points));
      CHECK(saved[i].second->quantized->bias().equal(loaded[i].second->quantized->bias()));
    }
    const Inputs in = inputs_for(m.info.config);
    CHECK(run(m, in).equal(run(back, in)));
  }
  const int64_t w8 = value_bytes(dir / "w8.safetensors"), w4 = value_bytes(dir / "w4.safetensors");
  CHECK(w4 * 2 == w8);
  // The files differ by the packed half of the values, give or take their headers' few hundred bytes.
  const auto file_size = [&](const char* name) { return static_cast<int64_t>(std::filesystem::file_size(dir / name)); };
  CHECK(std::abs(file_size("w8.safetensors") - file_size("w4.safetensors") - w8 / 2) < 2048);
  CHECK(model_bytes(dir / "w4.safetensors").loaded == model_bytes(dir / "w8.safetensors").loaded);  // held unpacked
  // A float model's file has no quantization and loads as before.
  const ModelInfo plain = read_model_info(golden("tiny_text_dit.model.safetensors"));
  CHECK(!plain.quantization.quantized());
}

TEST_CASE("malformed quantized model files are refused as model errors before anything runs",
          "[quant][quant_model][model_file]") {
  test::TempDir dir;
  const std::filesystem::path w8 = save_quantized(dir, "w8.safetensors", 8, Symmetry::Asymmetric);
  const std::filesystem::path w4 = save_quantized(dir, "w4.safetensors", 4, Symmetry::Symmetric);
  const std::filesystem::path w4a = save_quantized(dir, "w4a.safetensors", 4, Symmetry::Asymmetric);
  const std::string L = "blocks.0.attn.qkv";
  auto refusal = [&](const std::filesystem::path& from, const std::function<void(Tensors&, nlohmann::json&)>& change) {
    const std::filesystem::path bad = rewritten(from, dir / "bad.safetensors", change);
    CHECK(error_kind([&] { load_model(bad, at::kCPU, at::kFloat); }) == ErrorKind::Model);
    return error_message([&] { load_model(bad, at::kCPU, at::kFloat); });
  };
  // The rewriting itself keeps a good file good.
  CHECK(!error_kind([&] { load_model(rewritten(w8, dir / "same.safetensors", [](Tensors&, nlohmann::json&) {}), at::kCPU, at::kFloat); }));
  CHECK(contains(refusal(w8, [&](Tensors& t, nlohmann::json&) { t[L + ".weight_values"] = t[L + ".weight_values"].to(at::kInt); }),
                 "dtype I32, not I8"));
  CHECK(contains(refusal(w8, [&](Tensors& t, nlohmann::json&) { t[L + ".weight_scales"] = t[L + ".weight_scales"].to(at::kDouble); }),
                 "dtype F64, not F32"));
  CHECK(contains(refusal(w8, [&](Tensors& t, nlohmann::json&) { t[L + ".weight_scales"] = t[L + ".weight_scales"].slice(0, 1); }),
                 "rows"));
  CHECK(contains(refusal(w8, [&](Tensors& t, nlohmann::json&) {
                   for (const auto& name : quantized_tensor_names(L)) t[name] = t[name].slice(0, 1).contiguous();
                 }),
                 "the config needs"));
  for (const float bad : {0.0f, -1.0f, std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    CAPTURE(bad);
    CHECK(contains(refusal(w8, [&](Tensors& t, nlohmann::json&) { t[L + ".weight_scales"][1] = bad; }), "finite and > 0"));
  }
  // 0x88 packs -8 twice: off the symmetric 4-bit grid -7..7.
  CHECK(contains(refusal(w4, [&](Tensors& t, nlohmann::json&) { t[L + ".weight_values"][0][0] = 0x88; }), "outside -7..7"));
  CHECK(contains(refusal(w4, [&](Tensors& t, nlohmann::json&) { t[L + ".weight_zero_points"][0] = 1; }), "other than 0"));
  CHECK(contains(refusal(w4a, [&](Tensors& t, nlohmann::json&) { t[L + ".weight_zero_points"][0] = 8; }), "outside -8..7"));
  CHECK(contains(refusal(w8, [&](Tensors& t, nlohmann::json&) { t.erase(L + ".weight_zero_points"); }),
                 "missing tensor '" + L + ".weight_zero_points'"));
  CHECK(contains(refusal(w8, [&](Tensors& t, nlohmann::json&) { t.erase(L + ".bias"); }), "missing tensor"));
  // Metadata that disagrees with the tensors or the config.
  CHECK(contains(refusal(w8, [&](Tensors&, nlohmann::json& q) { q["weight_bits"] = 4; }), "dtype I8, not U8"));
  CHECK(contains(refusal(w4, [&](Tensors&, nlohmann::json& q) { q["weight_bits"] = 8; }), "dtype U8, not I8"));
  CHECK(contains(refusal(w8, [&](Tensors&, nlohmann::json& q) { q["layers"].erase(0); }), "does not list layer " + L));
  CHECK(contains(refusal(w8, [&](Tensors& t, nlohmann::json& q) {
                   q["layers"].push_back("blocks.9.attn.qkv");
                   for (const auto& name : quantized_tensor_names("blocks.9.attn.qkv")) t[name] = t[L + name.substr(L.size())];
                 }),
                 "not a quantizable layer"));
  CHECK(contains(refusal(w8, [&](Tensors& t, nlohmann::json&) { t[L + ".weight"] = at::zeros({3}); }), "unexpected tensor '" + L + ".weight'"));
  for (const auto& [key, value] : {std::pair<std::string, nlohmann::json>{"weight_bits", 3}, {"weight_bits", "8"},
                                   {"activations", "per-channel"}, {"symmetric", 1}, {"layers", nlohmann::json::array()}}) {
    CAPTURE(key, value.dump());
    CHECK(contains(refusal(w8, [&](Tensors&, nlohmann::json& q) { q[key] = value; }), "quantization metadata"));
  }
  CHECK(contains(refusal(w8, [&](Tensors&, nlohmann::json& q) { q["layers"].push_back(L); }), "distinct"));
  // Static activations named in the metadata need their calibration's tensors.
  CHECK(contains(refusal(w8, [&](Tensors&, nlohmann::json& q) { q["activations"] = "static"; }),
                 "missing tensor '" + L + ".input_scale'"));
}

TEST_CASE("static activations calibrated on the model's own samples are stored, reloaded and checked",
          "[quant][quant_model][model_file]") {
  test::TempDir dir;
  LoadedModel float_model = text_model();
  LoadedModel m = text_model();
  m.info.quantization = quantize_model(m.model, 8, Symmetry::Asymmetric, ActivationMode::StaticPerTensor);
  CHECK(m.info.quantization.label() == "W8A8-static");
  for (const auto& [name, linear] : quantizable_layers(m.model)) CHECK(linear->quantized->calibrating());
  CHECK(error_kind([&] { save_model(dir / "early.safetensors", m.model, m.info); }) == ErrorKind::Usage);
  calibrate_static_activations(m, {2, 2, 0}, at::kCPU);
  for (const auto& [name, linear] : quantizable_layers(m.model)) {
    CAPTURE(name);
    CHECK(!linear->quantized->calibrating());
    CHECK(linear->quantized->static_activations().calibrated());
    CHECK(linear->quantized->static_activations().scale() > 0);
  }
  CHECK(error_kind([&] { finish_static_calibration(m.model); }) == ErrorKind::Usage);  // nothing calibrating now
  const Inputs in = inputs_for(m.info.config);
  const at::Tensor out = run(m, in);
  // One scale a layer for every token and timestep; measured 8.8e-4 (dynamic per-token W8A8: 5.9e-4).
  CHECK(relative_error(out, run(float_model, in)) < 5e-3);
  const std::filesystem::path path = dir / "static.safetensors";
  save_model(path, m.model, m.info);
  LoadedModel loaded = load_model(path, at::kCPU, at::kFloat);
  CHECK(loaded.info.quantization.activations == ActivationMode::StaticPerTensor);
  CHECK(at::equal(run(loaded, in), out));
  use_references(loaded);
  CHECK(relative_error(run(loaded, in), out) < 1e-5);  // the integer path against its fake-quant twin

  const std::string L = "blocks.0.attn.proj";
  auto refusal = [&](const std::function<void(Tensors&, nlohmann::json&)>& change) {
    const std::filesystem::path bad = rewritten(path, dir / "bad.safetensors", change);
    return error_message([&] { load_model(bad, at::kCPU, at::kFloat); });
  };
  CHECK(contains(refusal([&](Tensors& t, nlohmann::json&) { t[L + ".input_scale"][0] = -1.0f; }), "finite and > 0"));
  CHECK(contains(refusal([&](Tensors& t, nlohmann::json&) { t[L + ".input_zero_point"][0] = 200; }), "outside -128..127"));
  CHECK(contains(refusal([&](Tensors& t, nlohmann::json&) { t[L + ".input_scale"] = at::ones({2}); }), "not [1]"));
  CHECK(contains(refusal([&](Tensors& t, nlohmann::json&) { t.erase(L + ".input_zero_point"); }), "missing tensor"));
  CHECK(contains(refusal([&](Tensors&, nlohmann::json& q) { q["activations"] = "dynamic"; }), "unexpected tensor"));
  LoadedModel dynamic = text_model();
  quantize_model(dynamic.model, 8, Symmetry::Asymmetric, ActivationMode::DynamicPerToken);
  CHECK(error_kind([&] { finish_static_calibration(dynamic.model); }) == ErrorKind::Usage);
}

TEST_CASE("ditgen quantize writes 8- and 4-bit models that generate and describe themselves", "[quant][quant_model][cli]") {
  test::TempDir dir;
  const std::string model = test::make_tiny_model(dir);
  for (const auto& [name, bits, acts, label] : {std::tuple{"q8", "8", "dynamic", "W8A8"}, std::tuple{"q4", "4", "none", "W4A32"},
                                                std::tuple{"q8s", "8", "static", "W8A8-static"}}) {
    CAPTURE(name);
    const std::string out = std::string(name) + ".safetensors";
    // --calibration only matters with static activations (two generated images here).
    test::CliResult r = test::run_cli({"quantize", model, "--weights", bits, "--acts", acts, "--calibration", "2", "-o", out},
                                      dir.path());
    REQUIRE(r.exit_code == 0);
    CHECK(contains(r.out, label));
    CHECK(contains(r.out, " MB -> "));
    r = test::run_cli({"generate", "-m", out, "3", "--steps", "3", "-s", "1", "-o", std::string(name) + ".png",
                       "--device", "cpu"}, dir.path());
    CHECK(r.exit_code == 0);
    CHECK(std::filesystem::exists(dir / (std::string(name) + ".png")));
    r = test::run_cli({"info", out}, dir.path());
    CHECK(r.exit_code == 0);
    CHECK(contains(r.out, "quantized:   " + std::string(label) + ": " + bits + "-bit asymmetric"));
    const std::string activations = std::string(acts) == "dynamic" ? "activations dynamic int8 per token"
                                    : std::string(acts) == "static" ? "activations static int8 per layer"
                                                                    : "activations float";
    CHECK(contains(r.out, activations));
    CHECK(contains(r.out, "memory:      file "));
  }
  CHECK(std::filesystem::file_size(dir / "q4.safetensors") < std::filesystem::file_size(dir / "q8.safetensors"));
  // The layers that stay float keep the input's dtype; the quantized layers' scales and biases are F32.
  const std::string spec = std::string(DITGEN_TEST_DATA) + "/../../configs/models/fmnist-tiny.yaml";
  REQUIRE(test::run_cli({"init", spec, "-o", "bf16.safetensors", "--dtype", "bf16"}, dir.path()).exit_code == 0);
  REQUIRE(test::run_cli({"quantize", "bf16.safetensors", "-o", "qbf16.safetensors"}, dir.path()).exit_code == 0);
  {
    const io::SafetensorsFile file = io::SafetensorsFile::open(dir / "qbf16.safetensors");
    CHECK(file.find("x_embedder.proj.weight")->dtype == io::DType::BF16);
    CHECK(file.find("blocks.0.adaLN_modulation.1.weight")->dtype == io::DType::BF16);
    CHECK(file.find("blocks.0.attn.qkv.bias")->dtype == io::DType::F32);
    CHECK(file.find("blocks.0.attn.qkv.weight_scales")->dtype == io::DType::F32);
    CHECK(file.find("blocks.0.attn.qkv.weight") == nullptr);
  }
  CHECK(std::filesystem::file_size(dir / "q8.safetensors") < std::filesystem::file_size(model));
  // Quantized models run on the CPU in fp32 only (CUDA takes bf16 too); training and a second quantization are
  // refused.
  test::CliResult r = test::run_cli({"generate", "-m", "q8.safetensors", "3", "--steps", "2", "-o", "bf.png", "--device",
                                     "cpu", "--dtype", "bf16"}, dir.path());
  CHECK(r.exit_code == 2);
  CHECK(contains(r.err, "fp32"));
  r = test::run_cli({"quantize", "q8.safetensors", "-o", "qq.safetensors"}, dir.path());
  CHECK(r.exit_code == 2);
  CHECK(contains(r.err, "already quantized"));

  // Bad flags: exit 2, nothing written.
  const std::vector<std::vector<std::string>> bad_flags{
      {"--weights", "3"}, {"--acts", "per-channel"}, {"--weights", "eight"}, {"-o", "bad.bin"},
      {"--acts", "static", "--calibration", "0"}};
  for (const auto& flags : bad_flags) {
    CAPTURE(flags);
    std::vector<std::string> args{"quantize", model, "-o", "bad.safetensors"};
    args.insert(args.end(), flags.begin(), flags.end());
    CHECK(test::run_cli(args, dir.path()).exit_code == 2);
    CHECK(!std::filesystem::exists(dir / "bad.safetensors"));
    CHECK(!std::filesystem::exists(dir / "bad.bin"));
  }
  // The input is never the output; an existing output file is replaced (as `init` does); a folder that
  // cannot be written is an output error; a missing model a model error.
  const auto before = std::filesystem::file_size(model);
  r = test::run_cli({"quantize", model, "-o", model}, dir.path());
  CHECK(r.exit_code == 2);
  CHECK(std::filesystem::file_size(model) == before);
  CHECK(!read_model_info(model).quantization.quantized());
  r = test::run_cli({"quantize", model, "--weights", "8", "-o", "q4.safetensors"}, dir.path());
  CHECK(r.exit_code == 0);
  CHECK(read_model_info(dir / "q4.safetensors").quantization.weight_bits == 8);
  CHECK(test::run_cli({"quantize", model, "-o", "missing/q.safetensors"}, dir.path()).exit_code == 5);
  CHECK(test::run_cli({"quantize", "absent.safetensors", "-o", "a.safetensors"}, dir.path()).exit_code == 4);
  r = test::run_cli({"quantize", "--help"}, dir.path());
  CHECK(r.exit_code == 0);
  CHECK(contains(r.out, "--symmetric"));
}
