// Moving FashionScenes: the text-to-video data (docs/SCENES.md). The grammar and layouts are in
// moving_grammar.h, captions in moving_captions.h; this adds the clips: items drawn from a Fashion-MNIST
// split, rendering, and the training dataset, which mixes in still scenes as motionless clips (joint
// image-video training).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "ditgen/data/moving_captions.h"
#include "ditgen/data/moving_grammar.h"
#include "ditgen/data/scenes.h"

namespace ditgen::data {

// `layout` placed for `frames` frames (place_items) with a source image of the right class for each item
// from `pool`, both drawn from streams of `seed`.
MovingScene realise_clip(const MovingScene& layout, const ItemPool& pool, int frames, uint64_t seed);
// realise_clip(sample_moving_layout(seed, pairs), pool, frames, seed).
MovingScene sample_clip(uint64_t seed, const ItemPool& pool, int frames, Pairs pairs = Pairs::Seen);

// Renders clips of `frames` frames whose sources index `source` (any padding): [N, F, 3, 64, 64] float32 in
// [-1, 1], black (-1) background; in frame f an item's 28x28 image sits at item_position(item, f), each pixel
// grey / 255 * colour, the items drawn in order where lit. Error(Usage) for a clip without sources, indices
// outside the source or bad `frames`; Error(Input) for one breaking the grammar or leaving the canvas.
at::Tensor render_clips(const std::vector<MovingScene>& clips, const FashionMnist& source, int frames);
at::Tensor render_clip(const MovingScene& clip, const FashionMnist& source, int frames);  // [F, 3, 64, 64]

// Share of training examples that are still scenes (motionless clips) unless a dataset is told otherwise.
constexpr double kDefaultStillShare = 0.2;

struct MovingScenesOptions {
  int frames = kDefaultFrames;              // 1..kMaxFrames
  double still_share = kDefaultStillShare;  // 0..1: examples that are still scenes repeated over the frames
  Pairs pairs = Pairs::Seen;
};

// Training clips. Example i is drawn from seed + i: with chance still_share a still scene (sample_scene, its
// paraphrased still caption, the image repeated in every frame), else a moving clip (sample_clip, a
// moving_paraphrase caption). Deterministic and indexable. Batches hold clips, not images: images is
// [B, F, 3, 64, 64] in [-1, 1]; labels [B] say which kind each is (0 moving, 1 still; class_names()).
class MovingScenesDataset : public Dataset {
 public:
  // Loads the Fashion-MNIST split from `dir`; Error(Input) when it is missing, Error(Usage) for size < 1 or
  // bad options.
  MovingScenesDataset(const std::filesystem::path& dir, Split split, int64_t size, uint64_t seed,
                      const MovingScenesOptions& options = {});

  int64_t size() const override { return size_; }
  int channels() const override { return 3; }
  int height() const override { return kSceneSize; }
  int width() const override { return kSceneSize; }
  int frames() const override { return options_.frames; }
  const std::vector<std::string>& class_names() const override;  // {"moving", "still"}
  // Clips [B, 3, F, 64, 64] (channels first, as models take them: docs/VIDEO.md), kinds [B] and captions;
  // Error(Usage) for an index outside 0..size()-1.
  Batch get(const std::vector<int64_t>& indices) const override;

  bool is_still(int64_t index) const;
  MovingScene clip(int64_t index) const;       // Error(Usage) for a still example
  Scene still(int64_t index) const;            // Error(Usage) for a moving example
  std::string caption(int64_t index) const;    // the training caption (a paraphrase)
  std::string canonical(int64_t index) const;  // the canonical caption of the same example

 private:
  uint64_t seed_of(int64_t index) const;  // checks the index

  FashionMnist source_;
  ItemPool pool_;
  int64_t size_;
  uint64_t seed_;
  MovingScenesOptions options_;
};

}  // namespace ditgen::data
