// VAE files: a diffusers AutoencoderKL state dict in safetensors, optionally with ditgen's config in its
// metadata (docs/MODEL_FORMAT.md, "VAE files"). Files without it have their shape read off the tensors.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "ditgen/io/safetensors.h"
#include "ditgen/vae/autoencoder_kl.h"

namespace ditgen::vae {

// The metadata key holding a VAE file's config (to_json(VaeConfig)).
inline constexpr const char* kVaeConfigKey = "ditgen.vae_config";

struct VaeInfo {
  VaeConfig config;
  std::filesystem::path path;
  std::string sha256;
  // Config fields neither the metadata nor the tensors give, so the SD-VAE's defaults stand in
  // (norm_num_groups, scaling_factor): said in a log line when the file is loaded.
  std::vector<std::string> defaulted;
};

// The config of a VAE file: its metadata's when present, else read off the tensor shapes (blocks, widths,
// layers, latent and image channels, which optional parts are there). Error(Model) naming the file for an
// original-layout (ldm) file, a file that is no AutoencoderKL, or values out of range.
VaeInfo vae_info_from_file(const io::SafetensorsFile& file);
// Opens and describes a VAE file without loading its weights. Error(Model).
VaeInfo read_vae_info(const std::filesystem::path& path);

struct LoadedVae {
  AutoencoderKL model{nullptr};
  VaeInfo info;
};

// Loads and checks a VAE file onto a device in a float dtype: every tensor the config needs, of its shape
// and a float dtype, nothing else (the attention's older diffusers names query/key/value/proj_attn are
// taken too); the stored bytes must cover the config's parameters before anything is allocated.
// Error(Model) naming the file and the tensor at fault.
LoadedVae load_vae(const std::filesystem::path& path, const at::Device& device, at::ScalarType dtype);

// Writes a VAE's weights (as `dtype`) with its config in the metadata, atomically.
void save_vae(const std::filesystem::path& path, AutoencoderKL& vae, at::ScalarType dtype = at::kFloat);

}  // namespace ditgen::vae
