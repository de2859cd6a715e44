// What each sample of a training batch runs at, per the technique being trained: a patch size for FlexiDiT
// (docs/FLEXIDIT.md), a sparse token grid for SparseDiT (docs/SPARSEDIT.md), the model's own compute otherwise.
#pragma once

#include <vector>

#include <ATen/ATen.h>

#include "ditgen/models/dit.h"
#include "ditgen/schedule/compute_schedule.h"
#include "ditgen/train/train_config.h"

namespace ditgen::train {

// One forward's setting: patch 0 is the model's own size, grid 0 its dense compute.
struct RunSetting {
  int patch = 0;
  int grid = 0;
};

// The settings of a batch: sample i runs at settings[group[i]].
struct BatchSettings {
  std::vector<RunSetting> settings;  // ordered by the patch size's place in train_patches, or by grid
  at::Tensor group;                  // [B] int64, CPU
};

// The noise levels a batch's samples are drawn from (1 = pure noise) and the grid they share (0: none yet).
struct NoiseRange {
  double low = 0, high = 1;
  int grid = 0;
};

class SamplePlan {
 public:
  // For flexible training, resolves the patch sizes samples are drawn from: the config's train_patches, else
  // every size the model runs on height x width images but, in lora mode, the frozen pre-trained one.
  // Error(Usage) for a size the model does not run on such images, the frozen one, one whose token side is
  // below a sparse model's min_grid, or none to train.
  SamplePlan(const TrainConfig& c, const DiTConfig& model, int height, int width);

  // The levels of a batch: all, but for SparseGrids::TimestepBatch the levels inference runs at the grid of one
  // level drawn uniformly (so over batches the pairs of level and grid are the per-sample mode's).
  NoiseRange noise_range(at::Generator& g) const;
  // The settings of the samples at `noise_level` [B] (double, CPU) of a batch drawn at `range`. Flexible: the
  // samples go to the patch sizes in equal shares, at random, so every step has the same forward shapes (and
  // kernel plans, cuDNN attention's among them, are built once); a sparse model runs each patch size's samples
  // at one grid drawn up to that size's token side. SparseGrids::Timestep: each sample at the grid its noise
  // level gets at inference. Else one grid a batch (the range's, or one drawn uniformly) for a sparse model.
  BatchSettings settings(const at::Tensor& noise_level, const NoiseRange& range, at::Generator& g) const;

 private:
  // Tokens a side of the training images at patch size p.
  int token_side(int p) const { return min_side_ / p; }
  // A sparse grid drawn uniformly from the model's min_grid to max_grid.
  int random_grid(int max_grid, at::Generator& g) const;

  SparseConfig sparse_;
  SparseGrids grids_;
  schedule::Density density_;
  int min_side_;
  std::vector<int> train_patches_;  // flexible training only
};

// The model's output for every sample at its setting: one forward per setting over its samples, put back in
// sample order. [B, C, H, W] -> [B, Cout, H, W]
at::Tensor forward_at(DiT& model, const at::Tensor& x, const at::Tensor& t, const at::Tensor& y,
                      const BatchSettings& batch);

}  // namespace ditgen::train
