#include "ditgen/data/moving_grammar.h"

#include <algorithm>
#include <cstdlib>
#include <tuple>

#include "ditgen/core/error.h"
#include "ditgen/data/scene_random.h"

namespace ditgen::data {

namespace {

constexpr const char* kDirectionNames[kDirections] = {"left", "right", "up", "down"};

constexpr int kBenchmarkSize = 512;
// Fixed: the benchmark must never change. Of the 40 seeds from 0x30F1E5, the one that asks for every held-out
// pair most evenly (each at least 9 times).
constexpr uint64_t kBenchmarkSeed = 0x30F20B;
constexpr int kPlacementTries = 1000;

std::tuple<int, int, Direction> key(const MovingItem& item) { return {item.colour, item.cls, item.direction}; }

bool horizontal(Direction d) { return d == Direction::Left || d == Direction::Right; }

// Frames in which two placed items' 28x28 boxes share more than half an item's area: where one may hide most
// of the other.
int covering_frames(const MovingItem& a, const MovingItem& b, int frames) {
  int count = 0;
  for (int f = 0; f < frames; ++f) {
    const Point p = item_position(a, f), q = item_position(b, f);
    const int shared = std::max(0, kItemSize - std::abs(p.x - q.x)) * std::max(0, kItemSize - std::abs(p.y - q.y));
    count += 2 * shared > kItemSize * kItemSize ? 1 : 0;
  }
  return count;
}

// A start for `item` drawn by `random`: along its travel, where the whole path stays inside.
Point draw_start(const MovingItem& item, int frames, SceneRandom& random) {
  const int travel = kStepPixels * (frames - 1);
  const int along = random.below(kMaxStart - travel + 1);  // 0 .. 36 - travel
  const int across = random.below(kMaxStart + 1);
  const bool backwards = item.direction == Direction::Left || item.direction == Direction::Up;
  const int first = backwards ? along + travel : along;
  return horizontal(item.direction) ? Point{first, across} : Point{across, first};
}

}  // namespace

const char* direction_name(Direction direction) {
  const int d = static_cast<int>(direction);
  if (d < 0 || d >= kDirections) throw Error(ErrorKind::Usage, "direction " + std::to_string(d) + " is outside 0..3");
  return kDirectionNames[d];
}

Point direction_step(Direction direction) {
  switch (direction) {
    case Direction::Left: return {-kStepPixels, 0};
    case Direction::Right: return {kStepPixels, 0};
    case Direction::Up: return {0, -kStepPixels};
    case Direction::Down: return {0, kStepPixels};
  }
  throw Error(ErrorKind::Usage, "direction " + std::to_string(static_cast<int>(direction)) + " is outside 0..3");
}

std::optional<Direction> direction_from_name(const std::string& name) {
  for (int d = 0; d < kDirections; ++d)
    if (name == kDirectionNames[d]) return static_cast<Direction>(d);
  return std::nullopt;
}

Point item_position(const MovingItem& item, int frame) {
  const Point step = direction_step(item.direction);
  return {item.start.x + frame * step.x, item.start.y + frame * step.y};
}

void check_frames(int frames) {
  if (frames < 1 || frames > kMaxFrames)
    throw Error(ErrorKind::Usage, "a clip has 1 to " + std::to_string(kMaxFrames) + " frames (an item crossing at " +
                                      std::to_string(kStepPixels) + " px a frame must stay inside), not " +
                                      std::to_string(frames));
}

void check_moving_layout(const MovingScene& scene) {
  const size_t n = scene.items.size();
  if (n < 1 || n > static_cast<size_t>(kMaxMovingItems))
    throw Error(ErrorKind::Input, "a clip holds 1 or 2 items, not " + std::to_string(n));
  for (const MovingItem& item : scene.items) {
    const int d = static_cast<int>(item.direction);
    if (item.cls < 0 || item.cls >= kSceneClasses || item.colour < 0 || item.colour >= kSceneColours || d < 0 ||
        d >= kDirections)
      throw Error(ErrorKind::Input, "clip item of class " + std::to_string(item.cls) + ", colour " +
                                        std::to_string(item.colour) + " and direction " + std::to_string(d) +
                                        " (classes are 0..9, colours 0..7, directions 0..3)");
  }
  if (n == 2 && scene.items[0].colour == scene.items[1].colour)
    throw Error(ErrorKind::Input, std::string("two ") + colour_name(scene.items[0].colour) +
                                      " items (the items of a clip have different colours)");
}

void check_moving_scene(const MovingScene& scene, int frames) {
  check_frames(frames);
  check_moving_layout(scene);
  for (const MovingItem& item : scene.items) {
    const Point first = item.start, last = item_position(item, frames - 1);
    if (std::min({first.x, first.y, last.x, last.y}) < 0 || std::max({first.x, first.y, last.x, last.y}) > kMaxStart)
      throw Error(ErrorKind::Input, std::string("a ") + colour_name(item.colour) + " " + class_word(item.cls) +
                                        " moving " + direction_name(item.direction) + " from (" +
                                        std::to_string(first.x) + ", " + std::to_string(first.y) +
                                        ") leaves the canvas within " + std::to_string(frames) + " frames");
  }
}

bool same_moving_layout(const MovingScene& a, const MovingScene& b) {
  if (a.items.size() != b.items.size()) return false;
  std::vector<std::tuple<int, int, Direction>> ka, kb;
  for (const MovingItem& item : a.items) ka.push_back(key(item));
  for (const MovingItem& item : b.items) kb.push_back(key(item));
  std::sort(ka.begin(), ka.end());
  std::sort(kb.begin(), kb.end());
  return ka == kb;
}

MovingScene sample_moving_layout(uint64_t seed, int count, Pairs pairs) {
  if (count < 1 || count > kMaxMovingItems)
    throw Error(ErrorKind::Usage, "a clip holds 1 or 2 items, not " + std::to_string(count));
  SceneRandom random(seed);
  MovingScene scene;
  for (int i = 0; i < count; ++i) {
    MovingItem item;
    do {  // 72 seen pairs of 80, and a colour not taken: a few redraws at most
      item.colour = random.below(kSceneColours);
      item.cls = random.below(kSceneClasses);
    } while ((pairs == Pairs::Seen && is_held_out(item.colour, item.cls)) ||
             (i == 1 && item.colour == scene.items[0].colour));
    item.direction = static_cast<Direction>(random.below(kDirections));
    scene.items.push_back(item);
  }
  return scene;
}

MovingScene sample_moving_layout(uint64_t seed, Pairs pairs) {
  const int count = 1 + SceneRandom(mix_seed(seed, 0)).below(kMaxMovingItems);
  return sample_moving_layout(seed, count, pairs);
}

MovingScene place_items(const MovingScene& layout, int frames, uint64_t seed) {
  check_frames(frames);
  check_moving_layout(layout);
  MovingScene scene = layout, best;
  SceneRandom random(seed);
  int fewest = frames + 1;
  for (int attempt = 0; attempt < kPlacementTries; ++attempt) {
    for (MovingItem& item : scene.items) item.start = draw_start(item, frames, random);
    const int covering = scene.items.size() < 2 ? 0 : covering_frames(scene.items[0], scene.items[1], frames);
    if (covering < fewest) {
      best = scene;
      fewest = covering;
    }
    if (2 * fewest <= frames) break;  // about half the draws of two items going the same way, nearly all others
  }
  return best;
}

const std::vector<MovingScene>& moving_benchmark_layouts() {
  static const std::vector<MovingScene> layouts = [] {
    std::vector<MovingScene> all;
    for (int i = 0; i < kBenchmarkSize; ++i)
      all.push_back(sample_moving_layout(mix_seed(kBenchmarkSeed, static_cast<uint64_t>(i)), 1 + i % kMaxMovingItems,
                                         Pairs::All));
    return all;
  }();
  return layouts;
}

}  // namespace ditgen::data
