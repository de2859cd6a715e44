#include "ditgen/train/sample_plan.h"

#include <algorithm>
#include <functional>
#include <string>

#include "ditgen/core/error.h"

namespace ditgen::train {

namespace {

// One setting per distinct value of `choice` [B], in sorted order, with each sample's place among them.
BatchSettings group_by(const at::Tensor& choice, const std::function<RunSetting(int64_t)>& setting) {
  const auto [values, inverse] = at::_unique(choice, /*sorted=*/true, /*return_inverse=*/true);
  BatchSettings out;
  for (int64_t i = 0; i < values.numel(); ++i) out.settings.push_back(setting(values[i].item<int64_t>()));
  out.group = inverse;
  return out;
}

}  // namespace

SamplePlan::SamplePlan(const TrainConfig& c, const DiTConfig& model, int height, int width)
    : sparse_(model.sparse),
      grids_(c.sparse_grids),
      density_{model.sparse.min_grid, model.sparse.max_grid},
      min_side_(std::min(height, width)) {
  if (!c.flexible) return;
  auto frozen = [&](int p) { return model.flex.lora() && p == model.patch_size; };  // lora mode keeps it as it was
  auto fits = [&](int p) { return model.supports_patch(p) && height % p == 0 && width % p == 0; };
  train_patches_ = c.flexible->train_patches;
  if (train_patches_.empty())
    for (int p : model.runnable_patches())
      if (fits(p) && !frozen(p)) train_patches_.push_back(p);
  for (int p : train_patches_) {
    if (!fits(p) || frozen(p))
      throw Error(ErrorKind::Usage, "train_patches: patch size " + std::to_string(p) +
                                        (frozen(p) ? " is the pre-trained one, which lora mode keeps frozen"
                                                   : " is not one the model runs on this data"));
    if (sparse_.sparse() && token_side(p) < sparse_.min_grid)
      throw Error(ErrorKind::Usage, "train_patches: patch size " + std::to_string(p) + " leaves a " +
                                        std::to_string(token_side(p)) + "-token side, below the sparse min_grid " +
                                        std::to_string(sparse_.min_grid));
  }
  if (train_patches_.empty()) throw Error(ErrorKind::Usage, "no patch size to train");
}

NoiseRange SamplePlan::noise_range(at::Generator& g) const {
  if (!sparse_.sparse() || grids_ != SparseGrids::TimestepBatch) return {};
  const int grid = density_.grid_at_noise(at::rand({1}, g).item<double>());
  const auto [low, high] = density_.noise_range(grid);
  return {low, high, grid};
}

BatchSettings SamplePlan::settings(const at::Tensor& noise_level, const NoiseRange& range, at::Generator& g) const {
  const int64_t B = noise_level.size(0);
  if (!train_patches_.empty()) {
    at::Tensor choice = at::randperm(B, g).remainder(static_cast<int64_t>(train_patches_.size()));  // [B]
    return group_by(choice, [&](int64_t i) {
      const int patch = train_patches_[i];
      return RunSetting{patch, sparse_.sparse() ? random_grid(std::min(sparse_.max_grid, token_side(patch)), g) : 0};
    });
  }
  if (sparse_.sparse() && grids_ == SparseGrids::Timestep) {
    const auto level = noise_level.accessor<double, 1>();
    std::vector<int64_t> grids;
    for (int64_t i = 0; i < B; ++i) grids.push_back(density_.grid_at_noise(level[i]));
    return group_by(at::tensor(grids), [](int64_t grid) { return RunSetting{0, static_cast<int>(grid)}; });
  }
  int grid = range.grid;
  if (sparse_.sparse() && grid == 0) grid = random_grid(sparse_.max_grid, g);
  return {{RunSetting{0, grid}}, at::zeros({B}, at::kLong)};
}

int SamplePlan::random_grid(int max_grid, at::Generator& g) const {
  return static_cast<int>(at::randint(sparse_.min_grid, max_grid + 1, {1}, g).item<int64_t>());
}

at::Tensor forward_at(DiT& model, const at::Tensor& x, const at::Tensor& t, const at::Tensor& y,
                      const BatchSettings& batch) {
  if (batch.settings.size() == 1) return model->forward(x, t, y, batch.settings[0].patch, batch.settings[0].grid);
  at::Tensor out;
  for (size_t i = 0; i < batch.settings.size(); ++i) {
    at::Tensor d = (batch.group == static_cast<int64_t>(i)).nonzero().flatten().to(x.device());    // [b]
    if (d.numel() == 0) continue;  // a data-parallel rank's share may hold none of a setting's samples
    at::Tensor part = model->forward(x.index_select(0, d), t.index_select(0, d), y.index_select(0, d),
                                     batch.settings[i].patch, batch.settings[i].grid);             // [b, Cout, H, W]
    if (!out.defined()) out = at::zeros({x.size(0), part.size(1), part.size(2), part.size(3)}, part.options());
    out = out.index_copy(0, d, part);                                                              // [B, Cout, H, W]
  }
  return out;
}

}  // namespace ditgen::train
