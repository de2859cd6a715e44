// `ditgen info`: what a model file or registry name is, and what one forward pass costs.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "ditgen/io/safetensors.h"
#include "ditgen/models/model_file.h"

namespace ditgen::cli {

namespace {

struct InfoOptions {
  std::string model;
  int height = 0, width = 0;
  bool json = false;
};

int run_info(const InfoOptions& o) {
  ModelInfo info;
  if (std::filesystem::exists(o.model) && std::filesystem::path(o.model).extension() == ".safetensors") {
    info = read_model_info(o.model);  // the weights are not needed
  } else {
    info = model_spec(o.model);
  }
  const DiTConfig& c = info.config;
  const int h = o.height ? o.height : c.input_height, w = o.width ? o.width : c.input_width;
  if (h % c.patch_size || w % c.patch_size || h <= 0 || w <= 0)
    throw Error(ErrorKind::Usage, "size " + std::to_string(h) + "x" + std::to_string(w) +
                                      " is not a positive multiple of the patch size " + std::to_string(c.patch_size));
  const double gflops = dit_gflops(c, h, w);
  const int pixel_scale = c.image_space == ImageSpace::Latent ? 8 : 1;  // SD-VAE latents are 8x smaller
  nlohmann::json j{{"name", info.name},
                   {"config", to_json(c)},
                   {"parameters", dit_parameter_count(c)},
                   {"tokens", (h / c.patch_size) * (w / c.patch_size)},
                   {"size", {h, w}},
                   {"gflops_per_forward", gflops},
                   {"class_names", info.class_names},
                   {"sampler_defaults",
                    {{"sampler", info.sampler_defaults.sampler},
                     {"steps", info.sampler_defaults.steps},
                     {"cfg_scale", info.sampler_defaults.cfg_scale},
                     {"cfg_channels", info.sampler_defaults.cfg_channels}}},
                   {"training", info.training}};
  if (!info.sha256.empty()) j["sha256"] = info.sha256;
  if (o.json) {
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("name:        %s\n", info.name.c_str());
  std::printf("layout:      depth %d, hidden %d, heads %d, patch %d, mlp ratio %g\n", c.depth, c.hidden_size,
              c.num_heads, c.patch_size, c.mlp_ratio);
  std::printf("input:       %d channels, trained at %dx%d (%s space), %d classes%s\n", c.in_channels, c.input_height,
              c.input_width, image_space_name(c.image_space), c.num_classes,
              c.has_null_class() ? " + null class (CFG)" : "");
  std::printf("objective:   %s%s, %d diffusion steps\n", objective_name(c.objective),
              c.learn_sigma ? " with learned sigma" : "", c.diffusion_steps);
  std::printf("parameters:  %lld (%.2f M)\n", static_cast<long long>(dit_parameter_count(c)),
              dit_parameter_count(c) / 1e6);
  std::printf("GFLOPs:      %.1f per forward at %dx%d (%dx%d px), %d tokens (MAC convention)\n", gflops, h, w,
              h * pixel_scale, w * pixel_scale, (h / c.patch_size) * (w / c.patch_size));
  std::printf("sampling:    %s, %d steps, cfg %g%s\n", info.sampler_defaults.sampler.c_str(),
              info.sampler_defaults.steps, info.sampler_defaults.cfg_scale,
              info.sampler_defaults.cfg_channels ? (" on " + std::to_string(info.sampler_defaults.cfg_channels) +
                                                    " channels").c_str() : "");
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
                                              "parameters, GFLOPs per forward");
  app->add_option("model", o->model, "Model file, model spec (YAML) or registry name")->required();
  app->add_option("--height", o->height, "Height in model units for the FLOP count (default: the model's)");
  app->add_option("--width", o->width, "Width in model units for the FLOP count (default: the model's)");
  app->add_flag("--json", o->json, "Print JSON");
  return {app, [o] { return run_info(*o); }};
}

}  // namespace ditgen::cli
