// A training run's settings: what train_model reads, as a YAML config spells them (docs/TRAINING.md).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "ditgen/data/subject_scenes.h"
#include "ditgen/models/model_file.h"

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

// Video training (docs/VIDEO.md): an image model is made a video model first (make_video, its weights kept);
// the data are Moving FashionScenes clips of `frames` frames, with still scenes (motionless clips captioned
// as images) at `still_share` of the samples: joint image-video training.
struct VideoTraining {
  int frames = 16;
  int window_frames = 4;     // a PT-DiT's windows in time (ignored for a dense model)
  double still_share = 0.2;
  // How much of their noise a clip's frames share (DiTConfig::frame_noise_correlation): set on the model made
  // from an image model; a video model keeps its own, and one set here must match it.
  std::optional<double> noise_correlation;
};

// PT-DiT from a dense model (docs/PTDIT.md): the dense model is converted first (make_proxy), its blocks
// evenly spaced onto `depth` proxy-token blocks.
struct ProxyTraining {
  ProxyConfig layout;  // windows and proxies (a clip's window_frames come from the video section)
  int depth = 0;       // 0 = the dense model's
};

// Fine-tuning a quantized model (docs/INTLORA.md). The float model's attention, cross-attention and MLP
// projections are quantized at `weight_bits` with `activations`. With `intlora` each carries IntLoRA adapters
// (quant/intlora.h), merged into int8 when the run writes its model; with `lora` they carry float adapters
// beside the fake-quantized layers (QLoRA), merged and re-quantized at the end. Only the adapters train, in
// float32 (no bf16 autocast: the quantized values must stay exact).
struct QuantizedTraining {
  int weight_bits = 8;
  quant::ActivationMode activations = quant::ActivationMode::DynamicPerToken;
};
struct IntLoRATraining {
  quant::IntLoRAKind kind = quant::IntLoRAKind::Mul;
  int rank = 4;
  double alpha = 4.0;
};

// The learning rate after warm-up: constant, or a cosine from lr down to 10% of it at the last step.
enum class LrSchedule { Constant, Cosine };

// SparseDiT fine-tuning (docs/SPARSEDIT.md): a dense model is converted first (make_sparse); each batch
// runs at one sparse grid drawn uniformly from min_grid..max_grid (Uniform), or each sample at the grid
// the model's density schedule gives its noise level (Timestep: the grids inference pairs with each noise
// level, one forward per grid present), or each batch at the grid of one noise level drawn uniformly, its
// samples at the noise levels inference runs at that grid (TimestepBatch: one forward a batch).
enum class SparseGrids { Uniform, Timestep, TimestepBatch };

// The words of the config files ("cosine", "timestep-batch").
const char* lr_schedule_name(LrSchedule schedule);
const char* sparse_grids_name(SparseGrids grids);
// Error(Input) naming the setting and the words it takes, for any other word.
LrSchedule parse_lr_schedule(const std::string& word);
SparseGrids parse_sparse_grids(const std::string& word);

struct TrainConfig {
  std::string model;               // model spec (YAML), registry name, or a model file to fine-tune
  std::filesystem::path data_dir;  // Fashion-MNIST folder; empty = the Debian package's
  int64_t scenes = 1000000;        // text models train on this many captioned scenes (data::ScenesDataset)
  std::filesystem::path output;    // run folder: checkpoint, log, samples, final model
  int64_t steps = 1000;
  int batch_size = 64;
  double lr = 1e-4;
  int64_t warmup_steps = 0;
  LrSchedule lr_schedule = LrSchedule::Constant;
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
  std::optional<ProxyTraining> proxy;  // the PT-DiT to convert a dense model into (ignored when it is one)
  std::optional<VideoTraining> video;  // clips (an image model is converted; a video model trains on clips anyway)
  std::optional<QuantizedTraining> quantization;  // with intlora or lora: adapters on a quantized model
  std::optional<IntLoRATraining> intlora;
  // Subject-driven fine-tuning (docs/INTLORA.md): a text model trains on data::SubjectScenesDataset (its seed
  // the run's), the subject's word joining its vocabulary.
  std::optional<data::SubjectOptions> subject;
  SparseGrids sparse_grids = SparseGrids::Uniform;
  std::string name;              // name of the trained model (default: the spec's)
  at::ScalarType save_dtype = at::kFloat;  // weights of the final model: fp32, or bf16 (halves the file)
  SamplerDefaults sampler_defaults;  // written into the final model
  bool sampler_defaults_set = false;

  nlohmann::json to_json() const;
};

// Reads a YAML training config; relative paths are relative to the file. Throws Error(Input) naming the file
// for an unreadable file, an unknown setting or word, or a value out of range.
TrainConfig load_train_config(const std::filesystem::path& path);

}  // namespace ditgen::train
