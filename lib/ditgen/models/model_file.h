// Self-describing model files (docs/MODEL_FORMAT.md): weights plus config, class names and defaults.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "ditgen/io/safetensors.h"
#include "ditgen/models/config.h"
#include "ditgen/models/dit.h"
#include "ditgen/quant/quantize_model.h"

namespace ditgen {

// What `generate` uses when the user does not say.
struct SamplerDefaults {
  std::string sampler = "ddim";
  int steps = 50;
  double cfg_scale = 4.0;
  int cfg_channels = 0;  // 0 = guide all channels
  // Compute-schedule shorthand (docs/FLEXIDIT.md, docs/SPARSEDIT.md), e.g. a sparse model's evaluated
  // trade-off "density=4:12"; no presets or files, so a model file stays self-contained.
  std::string schedule = "dense";
};

nlohmann::json to_json(const SamplerDefaults& d);
// Throws Error(Usage) when the defaults do not fit `config` (an unparsable schedule, or one the model cannot
// run at its own size, such as a density on a dense model).
void validate_sampler_defaults(const SamplerDefaults& d, const DiTConfig& config);

// Everything about a model but its weights.
struct ModelInfo {
  std::string name;
  DiTConfig config;
  std::vector<std::string> class_names;  // empty: classes are known by id only
  SamplerDefaults sampler_defaults;
  nlohmann::json training = nlohmann::json::object();
  // A latent model's default VAE file (docs/VAE.md), relative to the model file's folder; "" for none.
  std::string default_vae;
  // A quantized model's bits, activations and layers (docs/QUANT.md); no layers for a float model.
  quant::ModelQuantization quantization;
  std::filesystem::path path;  // empty for models built in memory
  std::string sha256;          // of the file; empty for models built in memory

  // Resolves a class prompt: a class name (case-insensitive, surrounding spaces ignored) or an id.
  // Throws Error(Usage) listing the valid names when nothing matches.
  int64_t resolve_class(const std::string& prompt) const;
  // Display name of a class id ("sneaker", or the id itself).
  std::string class_label(int64_t id) const;
};

struct LoadedModel {
  DiT model{nullptr};
  ModelInfo info;
};

// Fails at once when `path` names no file, with Error(Model): "model file not found", or for an official
// registry name such as DiT-XL/2 (which `info` and `init` take) that it has no weights and how to get a file.
// read_model_info and load_model begin with it; callers use it to fail before other slow work.
void check_model_path(const std::filesystem::path& path);

// Reads a model file's description (the file is validated; its weights are not loaded). Error(Model).
ModelInfo read_model_info(const std::filesystem::path& path);
// Parses a model metadata block (see model_metadata); `where` prefixes messages. Error(Model).
ModelInfo model_info_from_metadata(const io::Metadata& meta, const std::string& where);
// The metadata block a model file carries (format, name, config, class names, sampler defaults, training);
// training checkpoints carry it too, so a run resumes without the file it started from.
io::Metadata model_metadata(const ModelInfo& info);

// Refuses (Error(kind)) a model whose float32 weights would not fit in the memory available now, before
// anything is allocated.
void require_memory_for(const DiTConfig& config, ErrorKind kind);

// Loads and validates a model file onto a device in a dtype (float types only). The file must hold every
// weight its config declares (checked before allocating, so a header cannot ask for more than the file
// could fill) and the model must fit in memory.
// Throws Error(Model) naming the file for anything missing, malformed or mismatched. A quantized model's
// layers are read and checked before the model is built (quant/quantized_tensors.h); it runs on the CPU in
// float32 only (Error(Usage) for another device or dtype, quant::require_quantized_device).
LoadedModel load_model(const std::filesystem::path& path, const at::Device& device, at::ScalarType dtype);

// Writes weights (as `dtype`) and metadata atomically; a quantized model (info.quantization) writes its
// quantized layers as integers with float32 scales and biases (quant/quantized_tensors.h), whatever `dtype`.
void save_model(const std::filesystem::path& path, DiT& model, const ModelInfo& info,
                at::ScalarType dtype = at::kFloat);

// A model file's size, and the bytes its weights take once loaded in float32 (4-bit weights are held
// unpacked, one int8 a value). Error(Model) for a file that is not a valid safetensors file.
struct ModelBytes {
  int64_t file = 0;
  int64_t loaded = 0;
};
ModelBytes model_bytes(const std::filesystem::path& path);

// Reads a model description (YAML or JSON: name, config fields, class_names, sampler_defaults) or takes an
// official registry name such as DiT-XL/2. Throws Error(Input) for an unreadable or invalid file.
ModelInfo model_spec(const std::string& name_or_file);

}  // namespace ditgen
