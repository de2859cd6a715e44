// Following the items of Moving FashionScenes clips by their colour (docs/SCENES.md): an item's pixel is
// grey / 255 * colour, so its hue names its item. In each frame the lit pixels nearest an item's palette
// colour by hue are that item's; their brightness-weighted centroid is where it is (the centroid track gives
// the motion), and a 32x32 crop centred on their bounding box, grey, with other items' pixels removed, is
// what the classifier reads.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include <ATen/ATen.h>

#include "ditgen/data/moving_grammar.h"

namespace ditgen::eval {

// An item with fewer lit pixels of its colour in a frame is not there (a stray speck is not an item).
constexpr int64_t kMinTrackPixels = 8;

struct ItemTrack {
  std::vector<bool> found;                    // [F]: the item is there in frame f
  std::vector<std::array<double, 2>> centre;  // [F]: (x, y) of its pixels' centroid, in pixels; 0 where not found
  int found_frames() const;
};

struct ClipTracks {
  std::vector<ItemTrack> items;  // every named item of every clip, clip by clip in layout order: M of them
  at::Tensor crops;              // [M * F, 1, 32, 32] in [-1, 1], item-major; black where the item is not found
};

// Tracks the items `layouts` name in clips [N, F, 3, 64, 64] in [-1, 1] (any device; non-finite values read as
// black, the rest clamped). The crop is centred on the bounding box of the item's pixels within 20 px of
// their centroid (Fashion-MNIST centres items by their box; a stray speck further out does not move it) and
// grey as the still scorer makes it (the brightest channel over the colour's brightest channel), keeping
// unlit pixels and the item's own, blacking out pixels lit in another colour. Error(Usage) for a bad shape, fewer than
// 1 frame or a count mismatch; Error(Input) for a layout outside the grammar.
ClipTracks track_items(const at::Tensor& clips, const std::vector<data::MovingScene>& layouts);

// Below this fitted speed (px a frame; the grammar's is 2) an item stands still: no direction.
constexpr double kMinSpeed = 1.0;

struct Motion {
  bool tracked = false;   // found in at least two frames, so a velocity could be fitted
  double vx = 0, vy = 0;  // least-squares velocity of the centroid, px a frame
  bool moving = false;    // tracked, and its speed along its main axis is at least kMinSpeed
  data::Direction direction = data::Direction::Left;  // along the main axis of (vx, vy), when moving
  double jitter_sum = 0;  // sum over steps between consecutive found frames of |step - (vx, vy)|, px
  int64_t steps = 0;
};

// The motion a track shows.
Motion read_motion(const ItemTrack& track);

}  // namespace ditgen::eval
