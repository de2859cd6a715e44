// Training and fine-tuning of ditgen models: the objective of the model's config (Gaussian diffusion with
// the official hybrid loss, or flow matching), AdamW, EMA, label dropout for CFG, gradient clipping,
// bf16 autocast on CUDA, exact resume from atomic checkpoints, a JSONL log and sample grids. The settings are
// in train_config.h, the optimizer and checkpoints in checkpoint.h, what each sample runs at in sample_plan.h.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>

#include "ditgen/data/dataset.h"
#include "ditgen/models/model_file.h"
#include "ditgen/train/train_config.h"

namespace ditgen::dist {
class Rendezvous;
}

namespace ditgen::train {

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
// `rendezvous` (a distributed run of several processes, docs/DISTRIBUTED.md): data-parallel training, each
// process its equal share of every global batch of config.batch_size, drawn and noised as one process would,
// gradients averaged over the processes; every process reads the output folder (a checkpoint to resume), rank 0
// alone writes to it and calls on_log, and only its TrainResult has a model_path. Error(Usage) when the batch
// does not divide among the processes, Error(Runtime) when a process fails or they start from other weights.
TrainResult train_model(const TrainConfig& config, const data::Dataset& data, bool resume,
                        const std::function<void(const TrainProgress&)>& on_log = {}, int64_t stop_after = 0,
                        const std::function<bool()>& stop_requested = {}, dist::Rendezvous* rendezvous = nullptr);

}  // namespace ditgen::train
