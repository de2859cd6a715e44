// `ditgen info`: what a model file or registry name is, and what it costs (pipeline/cost_report.h).
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "ditgen/core/format.h"
#include "ditgen/io/bounded_file.h"
#include "ditgen/io/safetensors.h"
#include "ditgen/models/cost.h"
#include "ditgen/models/model_file.h"
#include "ditgen/pipeline/cost_report.h"
#include "shipped.h"

namespace ditgen::cli {

namespace {

struct InfoOptions {
  std::string model;
  std::optional<int> height, width;  // nullopt: the model's own
  std::optional<std::string> schedule;
  int steps = 0;
  double cfg_scale = 0;
  bool json = false;
};

// "steps 1-20: 0.52, steps 21-50: 2.09": runs of equal per-step values.
template <typename T>
std::string step_runs(const std::vector<T>& values) {
  std::string out;
  for (size_t i = 0; i < values.size();) {
    size_t j = i;
    while (j + 1 < values.size() && values[j + 1] == values[i]) ++j;
    out += c10::str(out.empty() ? "" : ", ", "steps ", i + 1, "-", j + 1, ": ", values[i]);
    i = j + 1;
  }
  return out;
}

// The adapters a quantized fine-tuning merged into the model, as its training record states them (IntLoRA or
// QLoRA, docs/INTLORA.md); "" when it states none. The record is the file's: anything malformed reads as none.
std::string merged_adapters(const nlohmann::json& training) {
  const nlohmann::json* config = training.is_object() && training.contains("config") ? &training["config"] : nullptr;
  if (!config || !config->is_object() || !config->contains("quantization")) return "";
  auto number = [](const nlohmann::json& j, const char* key) {
    return j.is_object() && j.contains(key) && j[key].is_number() ? j[key].get<double>() : 0.0;
  };
  if (config->contains("intlora") && (*config)["intlora"].is_object()) {
    const nlohmann::json& a = (*config)["intlora"];
    const std::string kind = a.contains("kind") && a["kind"].is_string() ? a["kind"].get<std::string>() : "?";
    std::string text = c10::str("IntLoRA-", kind == "mul" ? "MUL" : kind == "shift" ? "SHIFT" : kind, " rank ",
                                number(a, "rank"), " merged into the integer weights");
    if (training.contains("intlora_merge")) {
      const nlohmann::json& m = training["intlora_merge"];
      text += c10::str(" (relative error ", format_number(100 * number(m, "relative_error")), "%, ",
                       number(m, "requantized_rows"), " rows requantized)");
    }
    return text;
  }
  if (config->contains("lora") && (*config)["lora"].is_object())
    return c10::str("QLoRA rank ", number((*config)["lora"], "rank"),
                    ": float adapters trained on the quantized model, merged and re-quantized");
  return "";
}

int run_info(const InfoOptions& o) {
  ModelInfo info;
  if (io::path_present(o.model) && std::filesystem::path(o.model).extension() == ".safetensors") {
    info = read_model_info(o.model);  // the weights are not needed
  } else {
    info = model_spec(o.model);
  }
  const DiTConfig& c = info.config;
  CostQuery query;
  query.height = o.height.value_or(0);
  query.width = o.width.value_or(0);
  query.schedule = resolve_schedule(o.schedule, info);
  query.steps = o.steps;
  query.cfg_scale = o.cfg_scale;
  const CostReport cost = cost_report(info, query);
  const int h = cost.height, w = cost.width;
  const int pixel_scale = c.image_space == ImageSpace::Latent ? 8 : 1;  // SD-VAE latents are 8x smaller
  nlohmann::json j = cost.to_json();
  j["name"] = info.name;
  j["config"] = to_json(c);
  j["class_names"] = info.class_names;
  j["sampler_defaults"] = to_json(info.sampler_defaults);
  j["training"] = info.training;
  std::optional<ModelBytes> bytes;
  if (!info.path.empty()) bytes = model_bytes(info.path);
  if (bytes) j["memory"] = {{"file_bytes", bytes->file}, {"loaded_bytes", bytes->loaded}};
  if (info.quantization.quantized()) j["quantization"] = quant::to_json(info.quantization);
  if (o.json) {
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("name:        %s\n", info.name.c_str());
  std::printf("layout:      depth %d, hidden %d, heads %d, patch %d, mlp ratio %g\n", c.depth, c.hidden_size,
              c.num_heads, c.patch_size, c.mlp_ratio);
  if (c.flex.flexible()) {
    std::string sizes;
    for (const auto& [p, gflops] : cost.gflops_per_forward_by_patch)
      sizes += c10::str(sizes.empty() ? "" : ", ", p, " (", gflops, " GFLOPs)");
    std::printf("flexible:    %s tokenizer (underlying patch %d); patch sizes %s\n", c.flex.mode.c_str(),
                c.flex.underlying_patch, sizes.c_str());
  }
  if (c.sparse.sparse()) {
    const SparseConfig& q = c.sparse;
    std::printf("sparse:      %d Poolingformer, %d modules [1, %d, 1, %d], %d top blocks; trained for grids %d..%d "
                "(%.4g..%.4g GFLOPs)\n", q.pooling_blocks, q.modules, q.semantic, q.dense, c.top_blocks(), q.min_grid,
                q.max_grid, cost.gflops_per_forward_by_grid.at(q.min_grid),
                cost.gflops_per_forward_by_grid.at(q.max_grid));
  }
  if (c.proxy.proxy()) {
    const int gh = h / c.patch_size, gw = w / c.patch_size, k = c.proxy.proxy_split;
    std::printf("proxy:       %d proxy-token blocks; %dx%d windows of %dx%d tokens at %dx%d, %d prox%s a window; %s\n",
                c.depth, c.proxy.windows, c.proxy.windows, gh / c.proxy.windows, gw / c.proxy.windows, h, w, k * k,
                k * k == 1 ? "y" : "ies", c.proxy.adaln_single ? "adaLN-single" : "an adaLN head a block");
  }
  if (c.video())
    std::printf("video:       clips of %d frames (any count runs%s); frames share %s of their noise; GFLOPs below "
                "are per clip\n", c.input_frames,
                c.proxy.proxy() ? c10::str(" that is a multiple of ", c.proxy.window_frames, ": windows span ",
                                           c.proxy.window_frames, " frames").c_str() : "",
                c.frame_noise_correlation > 0 ? c10::str(c.frame_noise_correlation).c_str() : "none");
  if (c.ssm.ssm()) {
    const int tokens = (h / c.patch_size) * (w / c.patch_size);
    std::printf("ssm:         %d gated bidirectional S4D blocks, state %d, %s; hourglass %d (dense layers on %d "
                "packed tokens of %d at %dx%d), gate width %d\n", c.depth, c.ssm.state_size,
                c.ssm.shared_kernel() ? "one kernel shared by all channels" : "a kernel per channel", c.ssm.hourglass,
                tokens / c.ssm.hourglass, tokens, h, w, c.mlp_hidden());
  }
  if (c.text.enabled())
    std::printf("input:       %d channels, trained at %dx%d (%s space), text prompts of up to %d words%s\n",
                c.in_channels, c.input_height, c.input_width, image_space_name(c.image_space), c.text.max_tokens - 1,
                c.class_dropout_prob > 0 ? " (the empty prompt: CFG's null)" : "");
  else
    std::printf("input:       %d channels, trained at %dx%d (%s space), %d classes%s\n", c.in_channels,
                c.input_height, c.input_width, image_space_name(c.image_space), c.num_classes,
                c.has_null_class() ? " + null class (CFG)" : "");
  std::printf("objective:   %s%s, %d diffusion steps\n", objective_name(c.objective),
              c.learn_sigma ? " with learned sigma" : "", c.diffusion_steps);
  std::printf("parameters:  %lld (%.2f M)\n", static_cast<long long>(cost.parameters), cost.parameters / 1e6);
  if (const quant::ModelQuantization& q = info.quantization; q.quantized()) {
    const char* activations = q.activations == quant::ActivationMode::DynamicPerToken ? "dynamic int8 per token"
                              : q.activations == quant::ActivationMode::StaticPerTensor
                                  ? "static int8 per layer (calibrated)"
                                  : "float";
    std::printf("quantized:   %s: %d-bit %s weights per output channel, activations %s; %zu layers (the blocks' "
                "projections; the rest float); runs on the CPU (fp32) and CUDA\n", q.label().c_str(),
                q.weight_bits, q.symmetry == quant::Symmetry::Symmetric ? "symmetric" : "asymmetric", activations,
                q.layers.size());
  }
  if (const std::string adapters = merged_adapters(info.training); !adapters.empty())
    std::printf("adapters:    %s\n", adapters.c_str());
  if (bytes)
    std::printf("memory:      file %.2f MB, weights loaded %.2f MB\n", bytes->file / 1e6, bytes->loaded / 1e6);
  std::printf("GFLOPs:      %.1f per forward%s at %dx%d (%dx%d px), %lld tokens (MAC convention)\n",
              cost.gflops_per_forward, c.sparse.sparse() ? c10::str(" (grid ", c.sparse.max_grid, ")").c_str() : "",
              h, w, h * pixel_scale, w * pixel_scale, static_cast<long long>(cost.tokens));
  std::printf("generation:  %.4g GFLOPs per image over %d steps%s, schedule %s (%.1f%% of %s)\n",
              cost.gflops_per_image, cost.steps, cost.guided ? " with CFG" : "", cost.schedule.c_str(),
              100.0 * cost.gflops_per_image / cost.dense_gflops_per_image,
              c.sparse.sparse() ? "the dense DiT of this depth" : "dense");
  std::printf("per step:    %s\n", step_runs(cost.gflops_per_step).c_str());
  if (!cost.sparse_grid_per_step.empty()) std::printf("grids:       %s\n", step_runs(cost.sparse_grid_per_step).c_str());
  const SamplerDefaults& d = info.sampler_defaults;
  std::printf("sampling:    %s, %d steps, cfg %g%s%s\n", d.sampler.c_str(), d.steps, d.cfg_scale,
              d.cfg_channels ? (" on " + std::to_string(d.cfg_channels) + " channels").c_str() : "",
              d.schedule == "dense" ? "" : (", schedule " + d.schedule).c_str());
  if (c.text.enabled()) {
    std::string words;
    for (const auto& w : c.text.vocabulary) words += (words.empty() ? "" : " ") + w;
    std::printf("text:        encoder of %d layers, width %d; %zu words: %s\n", c.text.layers, c.text.width,
                c.text.vocabulary.size(), words.c_str());
  }
  if (!info.class_names.empty()) {
    std::string names;
    for (const auto& n : info.class_names) names += (names.empty() ? "" : ", ") + n;
    std::printf("classes:     %s\n", names.c_str());
  }
  if (!info.sha256.empty()) std::printf("sha256:      %s\n", info.sha256.c_str());
  std::printf("training:    %s\n", info.training.dump().c_str());
  return 0;
}

}  // namespace

Command add_info_command(CLI::App& root) {
  auto o = std::make_shared<InfoOptions>();
  CLI::App* app = root.add_subcommand("info", "Describe a model file or registry name (e.g. DiT-XL/2): config, "
                                              "parameters, GFLOPs per forward, per step and per image under a compute schedule");
  app->add_option("model", o->model, "Model file, model spec (YAML) or registry name")->required();
  app->add_option("--height", o->height, "Height in model units for the FLOP count (default: the model's)")
      ->check(CLI::Range(1, 8192));
  app->add_option("--width", o->width, "Width in model units for the FLOP count (default: the model's)")
      ->check(CLI::Range(1, 8192));
  app->add_option("--schedule", o->schedule,
                  "Compute schedule to cost (preset, YAML file or shorthand such as weak=4:0.4; default: the "
                  "model's, else dense)");
  app->add_option("--steps", o->steps, "Sampling steps for the per-image count (default: the model's)");
  app->add_option("--cfg-scale", o->cfg_scale, "Guidance scale; 1 = one branch (default: the model's)");
  app->add_flag("--json", o->json, "Print JSON");
  return {app, [o] { return run_info(*o); }};
}

}  // namespace ditgen::cli
