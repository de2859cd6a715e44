// What a training run carries from step to step besides the model's architecture: the trainable parameters
// with AdamW's moments and EMA copies, and the checkpoint that keeps them for an exact resume.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "ditgen/models/model_file.h"
#include "ditgen/train/train_config.h"

namespace ditgen::train {

// The learning rate of 0-based `step`: a linear warm-up to lr, then the config's schedule.
double learning_rate(const TrainConfig& c, int64_t step);

// The parameters of a model that require gradients, with AdamW's two moments and an EMA copy of each.
class TrainState {
 public:
  // Error(Usage) when every parameter is frozen.
  explicit TrainState(const DiT& model);

  // After backward: clips the gradients to the config's global norm, takes one AdamW step (decoupled weight
  // decay) at the learning rate of 0-based `step`, updates the EMA (warmed up over the first steps) and
  // drops the gradients. Returns the global gradient norm before clipping, [] on the device (no host sync).
  at::Tensor step(const TrainConfig& c, int64_t step);
  // Exchanges the parameters and their EMA: twice restores them (sample grids use the EMA weights).
  void swap_ema();
  // Puts the EMA into the parameters, for the final model.
  void use_ema();

  // Each state tensor by its name in a checkpoint ("ema.<param>", "adam.exp_avg.<param>", ...); they share
  // storage with the state, so copying into them sets it.
  std::vector<std::pair<std::string, at::Tensor>> named_state() const;

 private:
  std::vector<std::string> names_;
  std::vector<at::Tensor> params_, ema_, exp_avg_, exp_avg_sq_;
};

// What a checkpoint records beside the tensors.
struct CheckpointRecord {
  int64_t step = 0;       // steps done
  double seconds = 0;     // training time over every run of the output folder
  double last_loss = 0;   // the mean loss of the last log interval
};

// output/checkpoint.safetensors.
std::filesystem::path checkpoint_path(const std::filesystem::path& output);

// The model description the checkpoint in `output` carries (the model after any conversion) when `resume`
// finds one; nullopt otherwise (no checkpoint, or one written before checkpoints carried it).
std::optional<ModelInfo> resumed_model_info(const std::filesystem::path& output, bool resume);

// Writes the model's parameters, the buffers holding quantized and IntLoRA layers' integers, `state` and
// `record` atomically to checkpoint_path(c.output), with the
// model's description and the run's config.
void save_checkpoint(const TrainConfig& c, const ModelInfo& info, const DiT& model, const TrainState& state,
                     const CheckpointRecord& record);

// Reads a checkpoint into `model` and `state`. Error(Input) for a file that is not a ditgen training
// checkpoint, a tensor missing or of another shape (the run's config changed), or a step above `steps`.
CheckpointRecord load_checkpoint(const std::filesystem::path& path, const DiT& model, TrainState& state,
                                 int64_t steps);

// Keeps the lines of a JSONL log up to `step`, so a resumed run does not list a step twice.
void trim_log(const std::filesystem::path& log, int64_t step);

}  // namespace ditgen::train
