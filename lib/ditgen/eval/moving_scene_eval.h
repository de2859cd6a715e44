// Scoring Moving FashionScenes clips against the layouts their captions name (docs/SCENES.md): each named
// item is tracked by its colour (colour_tracks.h), its crop classified in every frame by the Fashion-MNIST
// classifier, its direction read from the centroid track. The same scorer on real clips rendered from the
// test split is the ceiling; a Fréchet distance over per-clip features compares generated and real clips.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "ditgen/data/moving_scenes.h"
#include "ditgen/eval/classifier.h"
#include "ditgen/eval/scene_eval.h"

namespace ditgen::eval {

struct MovingScores : SplitTallies<data::kMaxMovingItems> {
  // items: named items right (colour found, majority class right, direction right); scenes: clips with every
  // named item right.
  Tally item_class;       // named items whose colour is found and whose majority class is right
  Tally item_colour;      // named items whose colour is found in at least half the frames
  Tally item_direction;   // named items whose centroid track moves the asked way
  Tally frames;           // item-frames whose crop is classified right (a frame without the item is wrong)
  Tally consistent;       // item-frames, where the item is found, whose class is the item's majority class
  double jitter_sum = 0;  // over centroid steps: |step - the track's fitted velocity|, px
  int64_t steps = 0;
  double speed_sum = 0;  // over tracks found in two frames or more: fitted speed, px a frame
  int64_t tracks = 0;

  double step_jitter() const { return steps > 0 ? jitter_sum / static_cast<double>(steps) : 0; }
  double speed() const { return tracks > 0 ? speed_sum / static_cast<double>(tracks) : 0; }
  // SplitTallies::to_json with beside it "direction_accuracy", "frame_accuracy", "class_consistency",
  // "step_jitter_px", "speed_px" and the tallies "item_class", "item_colour", "item_direction", "frames",
  // "consistent_frames".
  nlohmann::json to_json() const;
};

struct MovingAnalysis {
  MovingScores scores;
  // [N, 266] float64, one row a clip: its items' classifier features (256) averaged over the items and the
  // frames they are found in, then for each of 2 item slots in layout order (zeros for a missing second item)
  // vx, vy, step jitter, feature flicker (the features' standard deviation over the frames, averaged over
  // the 256) and the share of frames the item is found in.
  at::Tensor features;
};

// Scores clips [N, F, 3, 64, 64] in [-1, 1] (any device, F >= 2) against layouts (N, each 1 or 2 items;
// starts and sources ignored), running the classifier on its own device. Error(Usage) for a bad shape, fewer
// than 2 frames or a count mismatch, Error(Input) for a layout outside the grammar.
MovingAnalysis analyse_moving_scenes(FmnistClassifier& classifier, const at::Tensor& clips,
                                     const std::vector<data::MovingScene>& layouts);
MovingScores score_moving_scenes(FmnistClassifier& classifier, const at::Tensor& clips,
                                 const std::vector<data::MovingScene>& layouts);

// `layouts` as real clips of `frames` frames with items from `source`: clip i is realise_clip(layouts[i],
// pool, frames, seed + i). [N, F, 3, 64, 64].
at::Tensor real_clips(const data::FashionMnist& source, const std::vector<data::MovingScene>& layouts, int frames,
                      uint64_t seed);

// The full report on generated clips (N >= 2, 2..19 frames) for `layouts` (e.g. moving_benchmark_layouts(),
// clip i for layout i), in the style of the still benchmark's "scenes" object:
//   "generated", "ceiling": MovingScores::to_json, the ceiling on real_clips(test, layouts, F, seed);
//   "ratio": generated over ceiling, for items, scenes and each item count ("by_count");
//   "held_out_over_seen": item accuracy on held-out pairs over seen ones;
//   "direction_accuracy", "frame_accuracy", "class_consistency", "step_jitter_px": the generated clips';
//   "frechet": {"distance": the Fréchet distance between the clips' features and the ceiling clips',
//               "floor": the same for real clips from the train split (other sources and starts)};
//   "clips", "frames".
// Error(Usage) for fewer than 2 clips or frames outside 2..19, and as analyse_moving_scenes.
nlohmann::json evaluate_moving_scenes(FmnistClassifier& classifier, const at::Tensor& clips,
                                      const std::vector<data::MovingScene>& layouts, const data::FashionMnist& test,
                                      const data::FashionMnist& train, uint64_t seed);

}  // namespace ditgen::eval
