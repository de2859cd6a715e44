#include "ditgen/data/scene_grammar.h"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <tuple>

#include "ditgen/core/error.h"
#include "ditgen/data/scene_random.h"

namespace ditgen::data {

namespace {

constexpr const char* kCellNames[] = {"top left", "top right", "bottom left", "bottom right", "center"};
constexpr const char* kColourNames[kSceneColours] = {"red", "orange", "yellow", "green",
                                                     "cyan", "blue", "purple", "white"};
constexpr Rgb kPalette[kSceneColours] = {{220, 40, 40},  {240, 140, 30}, {230, 220, 50}, {50, 190, 70},
                                         {40, 200, 210}, {50, 90, 230},  {160, 70, 220}, {235, 235, 235}};
constexpr const char* kClassWords[kSceneClasses] = {"t-shirt", "trouser", "pullover", "dress",  "coat",
                                                    "sandal",  "shirt",   "sneaker",  "bag",    "ankle boot"};
// (colour, class): green bag, red trouser, blue sandal, yellow coat, white sneaker, cyan dress,
// purple ankle boot, orange shirt.
constexpr std::pair<int, int> kHeldOut[] = {{3, 8}, {0, 1}, {5, 5}, {2, 4}, {7, 7}, {4, 3}, {6, 9}, {1, 6}};

constexpr int kBenchmarkSize = 2000;
constexpr uint64_t kBenchmarkSeed = 0x5CE7E5;  // any fixed value: the benchmark must never change

std::tuple<Cell, int, int> key(const SceneItem& item) { return {item.cell, item.cls, item.colour}; }

}  // namespace

const char* cell_name(Cell cell) { return kCellNames[static_cast<int>(cell)]; }

Point cell_origin(Cell cell) {
  switch (cell) {
    case Cell::TopLeft: return {0, 0};
    case Cell::TopRight: return {kCellSize, 0};
    case Cell::BottomLeft: return {0, kCellSize};
    case Cell::BottomRight: return {kCellSize, kCellSize};
    case Cell::Center: break;
  }
  return {(kSceneSize - kCellSize) / 2, (kSceneSize - kCellSize) / 2};  // (16, 16)
}

Point item_origin(Cell cell) {
  const Point o = cell_origin(cell);
  constexpr int margin = (kCellSize - kItemSize) / 2;  // 2: centred in its cell
  return {o.x + margin, o.y + margin};
}

const char* colour_name(int colour) {
  if (colour < 0 || colour >= kSceneColours)
    throw Error(ErrorKind::Usage, "scene colour " + std::to_string(colour) + " is outside 0..7");
  return kColourNames[colour];
}

Rgb palette_colour(int colour) {
  colour_name(colour);  // range check
  return kPalette[colour];
}

const char* class_word(int cls) {
  if (cls < 0 || cls >= kSceneClasses)
    throw Error(ErrorKind::Usage, "scene class " + std::to_string(cls) + " is outside 0..9");
  return kClassWords[cls];
}

std::optional<int> colour_from_name(const std::string& name) {
  for (int c = 0; c < kSceneColours; ++c)
    if (name == kColourNames[c]) return c;
  return std::nullopt;
}

std::optional<int> class_from_word(const std::string& word) {
  for (int c = 0; c < kSceneClasses; ++c)
    if (word == kClassWords[c]) return c;
  return std::nullopt;
}

bool is_held_out(int colour, int cls) {
  return std::find(std::begin(kHeldOut), std::end(kHeldOut), std::pair{colour, cls}) != std::end(kHeldOut);
}

void sort_by_cell(Scene& scene) {
  std::stable_sort(scene.items.begin(), scene.items.end(),
                   [](const SceneItem& a, const SceneItem& b) { return a.cell < b.cell; });
}

bool same_layout(const Scene& a, const Scene& b) {
  if (a.items.size() != b.items.size()) return false;
  std::vector<std::tuple<Cell, int, int>> ka, kb;
  for (const SceneItem& item : a.items) ka.push_back(key(item));
  for (const SceneItem& item : b.items) kb.push_back(key(item));
  std::sort(ka.begin(), ka.end());
  std::sort(kb.begin(), kb.end());
  return ka == kb;
}

void check_scene(const Scene& scene) {
  const size_t n = scene.items.size();
  if (n < 1 || n > static_cast<size_t>(kMaxItems))
    throw Error(ErrorKind::Input, "a scene holds 1 to 4 items, not " + std::to_string(n));
  bool used[kQuadrants + 1] = {};
  for (const SceneItem& item : scene.items) {
    const int cell = static_cast<int>(item.cell);
    if (cell < 0 || cell > kQuadrants) throw Error(ErrorKind::Input, "scene item in an unknown cell");
    if (item.cls < 0 || item.cls >= kSceneClasses || item.colour < 0 || item.colour >= kSceneColours)
      throw Error(ErrorKind::Input, "scene item of class " + std::to_string(item.cls) + " and colour " +
                                        std::to_string(item.colour) + " (classes are 0..9, colours 0..7)");
    if (std::abs(item.dx) > kMaxJitter || std::abs(item.dy) > kMaxJitter)
      throw Error(ErrorKind::Input, "scene item jittered by (" + std::to_string(item.dx) + ", " +
                                        std::to_string(item.dy) + "); at most 2 pixels each way");
    if (used[cell]) throw Error(ErrorKind::Input, std::string("two items in the ") + cell_name(item.cell));
    used[cell] = true;
  }
  if (used[static_cast<int>(Cell::Center)] && n > 1)
    throw Error(ErrorKind::Input, "only a lone item may sit in the center");
}

Scene sample_layout(uint64_t seed, int count, Pairs pairs) {
  if (count < 1 || count > kMaxItems)
    throw Error(ErrorKind::Usage, "a scene holds 1 to 4 items, not " + std::to_string(count));
  SceneRandom random(seed);
  std::array<int, kQuadrants> cells = {0, 1, 2, 3};
  random.shuffle(cells.begin(), cells.end());
  const bool centre = count == 1 && random.below(kQuadrants + 1) == kQuadrants;
  Scene scene;
  for (int i = 0; i < count; ++i) {
    SceneItem item;
    item.cell = centre ? Cell::Center : static_cast<Cell>(cells[static_cast<size_t>(i)]);
    do {  // 72 seen pairs of 80: a few redraws at most
      item.colour = random.below(kSceneColours);
      item.cls = random.below(kSceneClasses);
    } while (pairs == Pairs::Seen && is_held_out(item.colour, item.cls));
    item.dx = random.below(2 * kMaxJitter + 1) - kMaxJitter;
    item.dy = random.below(2 * kMaxJitter + 1) - kMaxJitter;
    scene.items.push_back(item);
  }
  sort_by_cell(scene);
  return scene;
}

Scene sample_layout(uint64_t seed, Pairs pairs) {
  const int count = 1 + SceneRandom(mix_seed(seed, 0)).below(kMaxItems);
  return sample_layout(seed, count, pairs);
}

const std::vector<Scene>& benchmark_layouts() {
  static const std::vector<Scene> layouts = [] {
    std::vector<Scene> all;
    for (int i = 0; i < kBenchmarkSize; ++i)
      all.push_back(sample_layout(mix_seed(kBenchmarkSeed, static_cast<uint64_t>(i)), 1 + i % kMaxItems,
                                  Pairs::All));
    for (Scene& scene : all)
      for (SceneItem& item : scene.items) item.dx = item.dy = 0;  // a layout: what the caption says, no more
    return all;
  }();
  return layouts;
}

}  // namespace ditgen::data
