// Training and fine-tuning of ditgen models: the objective of the model's config (Gaussian diffusion with
// the official hybrid loss, or flow matching), AdamW, EMA, label dropout for CFG, gradient clipping,
// bf16 autocast on CUDA, exact resume from atomic checkpoints, a JSONL log and sample grids.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "ditgen/models/model_file.h"
#include "ditgen/train/dataset.h"

namespace ditgen::train {

struct LoraOptions {
  std::vector<std::string> targets;  // regexes over linear-layer names
  int rank = 8;
  double alpha = 8.0;
};

// FlexiDiT fine-tuning (docs/FLEXIDIT.md): a fixed-patch model is made flexible first (make_flexible).
// "shared": every parameter trains, each sample at a random patch size from train_patches, on the data
// objective. "lora": only the new sizes' tokenizers, patch-size embeddings and LoRA adapters train, each
// sample at a random new size, distilled from the frozen model at its own patch size.
struct FlexibleTraining {
  FlexConfig flex;                  // the layout (ignored when the model is flexible already)
  std::vector<int> train_patches;   // sizes drawn per sample; empty = every size the model runs
};

// SparseDiT fine-tuning (docs/SPARSEDIT.md): a dense model is converted first (make_sparse); each batch
// runs at one sparse grid drawn uniformly from min_grid..max_grid ("uniform"), or each sample at the grid
// the model's density schedule gives its noise level ("timestep": the grids inference pairs with each
// noise level, one forward per grid present).

struct TrainConfig {
  std::string model;               // model spec (YAML), registry name, or a model file to fine-tune
  std::filesystem::path data_dir;  // Fashion-MNIST folder; empty = the Debian package's
  std::filesystem::path output;    // run folder: checkpoint, log, samples, final model
  int64_t steps = 1000;
  int batch_size = 64;
  double lr = 1e-4;
  int64_t warmup_steps = 0;
  std::string lr_schedule = "constant";  // constant | cosine (to 10% of lr)
  double weight_decay = 0.0;
  double beta1 = 0.9, beta2 = 0.999;
  double grad_clip = 1.0;  // max global norm; 0 = off
  double ema_decay = 0.9999;
  uint64_t seed = 0;
  int64_t log_every = 100;
  int64_t sample_every = 0;      // 0 = only at the end
  int64_t checkpoint_every = 1000;
  bool bf16 = true;              // autocast on CUDA
  std::string device = "auto";
  std::vector<std::string> freeze;     // regexes over parameter names
  std::optional<LoraOptions> lora;
  std::string teacher;           // model file: distil its predictions instead of the data objective
  std::optional<FlexibleTraining> flexible;
  std::optional<SparseConfig> sparse;  // the layout to convert a dense model into (ignored when it is sparse)
  std::string sparse_grids = "uniform";  // uniform | timestep | timestep-batch (docs/TRAINING.md)
  std::string name;              // name of the trained model (default: the spec's)
  std::string save_dtype = "fp32";  // weights of the final model: fp32 or bf16 (halves the file)
  SamplerDefaults sampler_defaults;  // written into the final model
  bool sampler_defaults_set = false;

  nlohmann::json to_json() const;
};

// Reads a YAML training config; relative paths are relative to the file. Throws Error(Input).
TrainConfig load_train_config(const std::filesystem::path& path);

struct TrainProgress {
  int64_t step = 0;
  int64_t steps = 0;
  double loss = 0;        // mean over the last log interval
  double lr = 0;
  double grad_norm = 0;
  double images_per_second = 0;
  double elapsed_s = 0;
};

struct TrainResult {
  std::filesystem::path model_path;  // final EMA model
  int64_t steps = 0;
  double seconds = 0;
  double final_loss = 0;
};

// The model a run of `config` trains: the description its checkpoint carries (after any conversion) when
// `resume` finds one in the output folder, so the starting file is not needed then; else the config's model
// file or spec. Errors as read_model_info / model_spec.
ModelInfo run_model_info(const TrainConfig& config, bool resume);

// Trains per `config` on `data`, resuming from output/checkpoint.safetensors when it exists and `resume`
// is set (Error(Usage) when a checkpoint exists and resume is not set, so no run is overwritten by accident).
// `stop_after` > 0 ends the run early after that step, and `stop_requested` (asked after every step) when it
// returns true: with a checkpoint, no model file, and TrainResult::steps the last step done.
TrainResult train_model(const TrainConfig& config, const Dataset& data, bool resume,
                        const std::function<void(const TrainProgress&)>& on_log = {}, int64_t stop_after = 0,
                        const std::function<bool()>& stop_requested = {});

}  // namespace ditgen::train
