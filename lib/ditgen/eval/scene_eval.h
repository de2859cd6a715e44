// Scoring FashionScenes images against the layouts their captions name: each named item's cell is cropped,
// its class read by the Fashion-MNIST classifier (on a grey version of the crop) and its colour read from the
// pixels; cells the caption leaves out must be dark. The same scorer on real scenes is the ceiling.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <nlohmann/json.hpp>

#include "ditgen/data/scenes.h"
#include "ditgen/eval/classifier.h"

namespace ditgen::eval {

// Right of total, for one slice of the figures.
struct Tally {
  int64_t right = 0;
  int64_t total = 0;
  double accuracy() const { return total > 0 ? static_cast<double>(right) / static_cast<double>(total) : 0.0; }
  void add(bool is_right) {
    right += is_right ? 1 : 0;
    total += 1;
  }
  nlohmann::json to_json() const;  // {"accuracy", "right", "total"}
};

// generated's accuracy over ceiling's (0 where the ceiling is 0): how much of what the scorer allows is reached.
double accuracy_ratio(const Tally& generated, const Tally& ceiling);

// The item and scene tallies every scene figure is split into: by item count (1..Counts) and by seen versus
// held-out colour-class pairs (a scene counts as held-out when any of its items is).
template <size_t Counts>
struct SplitTallies {
  Tally items;   // named items right
  Tally scenes;  // scenes with everything right
  std::array<Tally, Counts> items_by_count{};   // [k - 1]: items of scenes of k items
  std::array<Tally, Counts> scenes_by_count{};  // [k - 1]: scenes of k items
  Tally seen_items, held_out_items;    // items by whether their colour-class pair is held out of training
  Tally seen_scenes, held_out_scenes;  // scenes with no held-out pair / with at least one

  // One named item of a scene of `count` items.
  void add_item(size_t count, bool held_out, bool right) {
    items.add(right);
    items_by_count[count - 1].add(right);
    (held_out ? held_out_items : seen_items).add(right);
  }
  void add_scene(size_t count, bool held_out, bool right) {
    scenes.add(right);
    scenes_by_count[count - 1].add(right);
    (held_out ? held_out_scenes : seen_scenes).add(right);
  }

  // {"item_accuracy", "scene_accuracy", "items", "scenes", "by_count": {"1": {"items", "scenes"}, ...},
  //  "seen": {"items", "scenes"}, "held_out": {...}}, the counts beside each accuracy.
  nlohmann::json to_json() const {
    nlohmann::json by_count = nlohmann::json::object();
    for (size_t k = 0; k < Counts; ++k)
      by_count[std::to_string(k + 1)] = {{"items", items_by_count[k].to_json()},
                                         {"scenes", scenes_by_count[k].to_json()}};
    return {{"item_accuracy", items.accuracy()},
            {"scene_accuracy", scenes.accuracy()},
            {"items", items.to_json()},
            {"scenes", scenes.to_json()},
            {"by_count", by_count},
            {"seen", {{"items", seen_items.to_json()}, {"scenes", seen_scenes.to_json()}}},
            {"held_out", {{"items", held_out_items.to_json()}, {"scenes", held_out_scenes.to_json()}}}};
  }

  // These accuracies over `ceiling`'s: {"items", "scenes", "by_count": {"1": {"items", "scenes"}, ...}}.
  nlohmann::json ratio_json(const SplitTallies& ceiling) const {
    nlohmann::json by_count = nlohmann::json::object();
    for (size_t k = 0; k < Counts; ++k)
      by_count[std::to_string(k + 1)] = {{"items", accuracy_ratio(items_by_count[k], ceiling.items_by_count[k])},
                                         {"scenes", accuracy_ratio(scenes_by_count[k], ceiling.scenes_by_count[k])}};
    return {{"items", accuracy_ratio(items, ceiling.items)},
            {"scenes", accuracy_ratio(scenes, ceiling.scenes)},
            {"by_count", by_count}};
  }

  // Item accuracy on held-out pairs over that on seen ones: 1 when the model composes as well as it recalls.
  double held_out_over_seen() const { return accuracy_ratio(held_out_items, seen_items); }
};

struct SceneScores : SplitTallies<data::kMaxItems> {
  // items: named items with the right class and colour in their place; scenes: scenes with every named item
  // right and every other cell empty.
  Tally item_class;   // named items of the right class (colour aside)
  Tally item_colour;  // named items of the right colour (class aside)
  Tally empty_cells;  // cells the caption leaves out that are empty

  // SplitTallies::to_json with "item_class", "item_colour" and "empty_cells" beside.
  nlohmann::json to_json() const;
};

// Brightness (max over channels, in [0, 1]) above which a pixel counts as lit.
constexpr double kLitLevel = 0.2;
// An unnamed cell with at most this many lit pixels (of 1024) is empty: a stray speck is not an item.
constexpr int64_t kEmptyCellLitPixels = 8;

// The palette colour nearest by angle to the colour (r, g, b) (non-negative, any scale): only hue and
// saturation count, not brightness, since an item's pixel is grey / 255 * colour. 0 for black.
int nearest_palette_colour(float r, float g, float b);
// The brightest channel of palette colour `colour` in [0, 1]: a real item's brightest channel is its grey
// times this.
float palette_peak(int colour);

// Runs `f` on the classifier's device over `inputs` [M, ...] in batches of 500, without autograd; the results
// concatenated on the CPU.
template <class F>
at::Tensor in_classifier_batches(FmnistClassifier& classifier, const at::Tensor& inputs, F f) {
  constexpr int64_t kBatch = 500;
  c10::InferenceMode inference;
  const at::Device device = classifier->parameters().front().device();
  std::vector<at::Tensor> out;
  for (int64_t begin = 0; begin < inputs.size(0); begin += kBatch) {
    const int64_t count = std::min(kBatch, inputs.size(0) - begin);
    out.push_back(f(inputs.narrow(0, begin, count).to(device)).cpu());
  }
  return at::cat(out);
}

// Scores images [N, 3, 64, 64] in [-1, 1] (any device, clamped) against layouts (N, each 1..4 items; jitter
// and sources ignored), running the classifier on its own device in batches. Error(Usage) when the counts
// or shape disagree, Error(Input) for a layout that breaks the grammar.
SceneScores score_scenes(FmnistClassifier& classifier, const at::Tensor& images,
                         const std::vector<data::Scene>& layouts);

// The grey version of every named item's 32x32 crop (the cell, or the central 32x32 for a centre item), in
// layout order: [M, 1, 32, 32] in [-1, 1], what the classifier and crop FID see. The grey is the brightest
// channel scaled back by the palette colour read from the crop, which undoes the tint of a real item exactly.
at::Tensor item_crops(const at::Tensor& images, const std::vector<data::Scene>& layouts);

// The colour (palette index) of the lit pixels of crops [M, 3, 32, 32] in [-1, 1]: their mean RGB's
// direction, nearest palette colour by angle; -1 for a crop with no lit pixel. [M] int64.
at::Tensor read_colours(const at::Tensor& crops);

// The benchmark's first `count` layouts (1..2000) rendered from `test` (the Fashion-MNIST test split) with
// sources and jitter drawn from `seed`: the real scenes a perfect generator would make.
at::Tensor real_scenes(const data::FashionMnist& test, int64_t count, uint64_t seed);

// score_scenes on real_scenes(test, count, seed) against their layouts: the ceiling of the figures.
SceneScores real_scene_ceiling(FmnistClassifier& classifier, const data::FashionMnist& test, int64_t count,
                               uint64_t seed);

struct CropFid {
  double fid = 0;         // the images' item crops against the test split
  double real_floor = 0;  // item crops of real scenes (same layouts, train-split items, jittered like training
                          // scenes) against the same: what a perfect generator would reach
};

// FID-FMNIST of item crops: classifier features of item_crops(images, layouts) against those of as many
// test-split images, with the floor the same crops of real scenes (train split, sources and jitter from `seed`)
// reach.
// Error(Usage) for fewer than 2 items.
CropFid crop_fid(FmnistClassifier& classifier, const at::Tensor& images, const std::vector<data::Scene>& layouts,
                 const data::FashionMnist& test, const data::FashionMnist& train, uint64_t seed);

}  // namespace ditgen::eval
