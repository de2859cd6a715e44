// FashionScenes: 64x64 colour scenes of up to four Fashion-MNIST items, each tinted with a palette colour and
// placed in a quadrant (or, alone, the centre), with captions that name every item (docs/SCENES.md). The
// grammar and layouts are in scene_grammar.h, captions in scene_captions.h; this adds the images: items drawn
// from a Fashion-MNIST split, rendering, and the training dataset.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "ditgen/data/dataset.h"
#include "ditgen/data/fashion_mnist.h"
#include "ditgen/data/scene_captions.h"
#include "ditgen/data/scene_grammar.h"

namespace ditgen::data {

// A split's image indices by class, which scenes draw their items from.
class ItemPool {
 public:
  // Error(Input) when some class has no image in `source`.
  explicit ItemPool(const FashionMnist& source);
  // An image of class `cls` chosen by `random` (any 64-bit value).
  int64_t pick(int cls, uint64_t random) const;

 private:
  std::array<std::vector<int64_t>, kSceneClasses> by_class_;
};

// `layout` with a source image of the right class for each item, chosen by `seed`.
Scene with_sources(const Scene& layout, const ItemPool& pool, uint64_t seed);
// sample_layout(seed, pairs) with sources from `pool`.
Scene sample_scene(uint64_t seed, const ItemPool& pool, Pairs pairs = Pairs::Seen);

// The grey images of `ids` in `source` without its padding, as grey / 255: [M, 28, 28] float32 in [0, 1],
// contiguous. FashionMnist::get checks the indices.
at::Tensor item_greys(const FashionMnist& source, const std::vector<int64_t>& ids);

// Draws one item onto a canvas of three 64x64 planes in [0, 1] (row-major, contiguous): its 28x28 grey image
// (grey / 255, row-major) tinted with palette colour `colour`, corner at `at` (wholly inside), written where
// the item is lit, so a later item covers an earlier one only there.
void draw_item(float* canvas, const float* grey, int colour, Point at);

// Renders scenes whose sources index `source` (any padding): [N, 3, 64, 64] float32 in [-1, 1], black
// (-1) background, each item pixel grey / 255 * colour per channel. Error(Usage) for a scene without sources
// or with indices outside the source; Error(Input) for one breaking the grammar.
at::Tensor render(const std::vector<Scene>& scenes, const FashionMnist& source);
at::Tensor render(const Scene& scene, const FashionMnist& source);  // [3, 64, 64]

// What every data set of captioned 64x64 scenes shares: RGB canvases, one class ("scene": the captions are the
// condition) and a fixed number of examples with its index check.
class SceneDataset : public Dataset {
 public:
  int64_t size() const override { return size_; }
  int channels() const override { return 3; }
  int height() const override { return kSceneSize; }
  int width() const override { return kSceneSize; }
  const std::vector<std::string>& class_names() const override;  // {"scene"}

 protected:
  // Error(Usage) for size < 1; `what` starts the errors ("scenes").
  SceneDataset(int64_t size, const char* what);
  void check_index(int64_t index) const;  // Error(Usage) outside 0..size()-1

 private:
  int64_t size_;
  const char* what_;
};

// Training scenes: example i is sample_scene(seed + i) on the train split with a paraphrased caption (the
// canonical one half of the time). Deterministic and indexable; labels are all 0 (one class, "scene"):
// the captions are the condition.
class ScenesDataset : public SceneDataset {
 public:
  // Loads the Fashion-MNIST split from `dir`; Error(Input) when it is missing, Error(Usage) for size < 1.
  ScenesDataset(const std::filesystem::path& dir, Split split, int64_t size, uint64_t seed,
                Pairs pairs = Pairs::Seen);

  // Images [B, 3, 64, 64], labels [B] (zeros) and captions; Error(Usage) for an index outside 0..size()-1.
  Batch get(const std::vector<int64_t>& indices) const override;

  Scene scene(int64_t index) const;
  std::string caption(int64_t index) const;  // the training caption (a paraphrase)

 private:
  FashionMnist source_;
  ItemPool pool_;
  uint64_t seed_;
  Pairs pairs_;
};

}  // namespace ditgen::data
