// The fixed grammar of Moving FashionScenes (docs/SCENES.md), the text-to-video data: clips of 1 or 2 tinted
// Fashion-MNIST items, each sliding in a straight line 2 px a frame left, right, up or down across a 64x64
// black canvas. The palette, the item words and the held-out pairs are the still scenes' (scene_grammar.h).
// No LibTorch: the caption parser built on it is fuzzed on its own (tests/fuzz).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ditgen/data/scene_grammar.h"

namespace ditgen::data {

constexpr int kStepPixels = 2;  // how far an item moves each frame
constexpr int kDefaultFrames = 16;
// The most frames an item can travel wholly inside the canvas: 28 + 2 (F - 1) <= 64.
constexpr int kMaxFrames = (kSceneSize - kItemSize) / kStepPixels + 1;  // 19
constexpr int kMaxMovingItems = 2;
constexpr int kMaxStart = kSceneSize - kItemSize;  // 36: the last corner position inside the canvas, each axis

enum class Direction { Left, Right, Up, Down };
constexpr int kDirections = 4;

const char* direction_name(Direction direction);  // "left", "right", "up", "down"
Point direction_step(Direction direction);        // one frame's move: (-2, 0), (2, 0), (0, -2), (0, 2)
std::optional<Direction> direction_from_name(const std::string& name);  // exact, lowercase

struct MovingItem {
  int cls = 0;
  int colour = 0;
  Direction direction = Direction::Left;
  Point start{-1, -1};        // the top-left corner of its 28x28 image in frame 0; (-1, -1) in a layout
  int64_t source_index = -1;  // the Fashion-MNIST image drawn; -1 in a layout
};

// Items in drawing order (a later one is drawn over an earlier one where it is lit); canonical captions name
// them in this order.
struct MovingScene {
  std::vector<MovingItem> items;
};

// Where an item's 28x28 image starts in frame `frame`: start + frame * step.
Point item_position(const MovingItem& item, int frame);

// Error(Input) naming the problem unless the content follows the grammar: 1 or 2 items of known classes,
// colours and directions, of different colours.
void check_moving_layout(const MovingScene& scene);
// The same, and every item's start keeps it wholly inside the canvas in each of `frames` frames (Error(Input)),
// with `frames` in 1..kMaxFrames (Error(Usage)).
void check_moving_scene(const MovingScene& scene, int frames);
void check_frames(int frames);  // Error(Usage) unless 1..kMaxFrames

// Whether two clips name the same items (class, colour, direction), whatever their order, starts and sources.
bool same_moving_layout(const MovingScene& a, const MovingScene& b);

// The content of a clip drawn from `seed` (no starts or sources): 1 or 2 items with equal chance, distinct
// uniform colours, uniform classes (pairs outside `pairs` drawn again) and uniform directions.
MovingScene sample_moving_layout(uint64_t seed, Pairs pairs = Pairs::Seen);
// The same with exactly `count` items (1 or 2): Error(Usage) otherwise.
MovingScene sample_moving_layout(uint64_t seed, int count, Pairs pairs);

// `layout` with starts drawn from `seed` for clips of `frames` frames: along an item's travel uniform over the
// corners that keep it inside for every frame, across it uniform over 0..36. Two items are drawn again until
// their 28x28 boxes share more than half an item's area in at most half the frames (or, failing that in 1000
// draws, the draw with the fewest such frames), so neither hides most of the other for most of the clip;
// paths still cross.
MovingScene place_items(const MovingScene& layout, int frames, uint64_t seed);

// A fixed benchmark of 512 layouts (all pairs allowed): 1 and 2 items in turn, so every even prefix is
// balanced by count; every direction comes up at least 50 times for each count, every held-out pair at least
// 9 times. No starts or sources.
const std::vector<MovingScene>& moving_benchmark_layouts();

}  // namespace ditgen::data
