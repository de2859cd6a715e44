// Architecture configs: what a model file's "ditgen.config" holds, and the official DiT table.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "ditgen/core/error.h"

namespace ditgen {

enum class Objective { Eps, Flow };            // noise prediction (Gaussian diffusion) or rectified-flow velocity
enum class ImageSpace { Pixel, Latent };       // outputs are pixels in [-1, 1], or VAE latents

struct DiTConfig {
  int depth = 12;
  int hidden_size = 384;
  int num_heads = 6;
  int patch_size = 2;
  double mlp_ratio = 4.0;
  int in_channels = 4;
  int input_height = 32;  // the training size; any size divisible by patch_size runs
  int input_width = 32;
  int num_classes = 1000;
  double class_dropout_prob = 0.1;
  bool learn_sigma = true;
  Objective objective = Objective::Eps;
  int diffusion_steps = 1000;
  std::string beta_schedule = "linear";
  ImageSpace image_space = ImageSpace::Latent;

  int out_channels() const { return learn_sigma ? 2 * in_channels : in_channels; }
  int mlp_hidden() const { return static_cast<int>(hidden_size * mlp_ratio); }
  bool has_null_class() const { return class_dropout_prob > 0; }
  // Throws Error(kind) when a field is out of range (heads must divide hidden_size, ...).
  void validate(ErrorKind kind) const;
};

nlohmann::json to_json(const DiTConfig& config);
// Parses and validates; throws Error(Model) naming the bad field.
DiTConfig config_from_json(const nlohmann::json& json);

// The twelve official configs: DiT-{S,B,L,XL}/{2,4,8} with 4-channel 32x32 latents and 1000 classes.
const std::map<std::string, DiTConfig>& official_configs();
// Looks a registry name up case-insensitively; throws Error(Usage) listing the names when unknown.
DiTConfig official_config(const std::string& name);

const char* objective_name(Objective objective);
const char* image_space_name(ImageSpace space);

}  // namespace ditgen
