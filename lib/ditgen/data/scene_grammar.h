// The fixed grammar of FashionScenes (docs/SCENES.md): the canvas and its cells, the palette, the item words,
// the held-out colour-item pairs, scenes as data, and seeded layouts. No LibTorch: the caption parser built on
// it is fuzzed on its own (tests/fuzz).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ditgen::data {

constexpr int kSceneSize = 64;   // canvas side
constexpr int kCellSize = 32;    // a quadrant's side, and the side of every crop the evaluator reads
constexpr int kItemSize = 28;    // a Fashion-MNIST image's side
constexpr int kMaxJitter = 2;    // an item may sit up to this many pixels off its cell's centre, each axis
constexpr int kMaxItems = 4;
constexpr int kSceneColours = 8;
constexpr int kSceneClasses = 10;

// Where an item sits. The four quadrants come first, in caption order; the centre only holds a lone item.
enum class Cell { TopLeft, TopRight, BottomLeft, BottomRight, Center };
constexpr int kQuadrants = 4;

struct Point {
  int x = 0;
  int y = 0;
};

const char* cell_name(Cell cell);      // "top left", .., "center"
Point cell_origin(Cell cell);          // top-left corner of the 32x32 region the cell's item is read from
Point item_origin(Cell cell);          // where an unjittered item's 28x28 image starts: cell origin + (2, 2)

struct Rgb {
  int r = 0, g = 0, b = 0;
};

const char* colour_name(int colour);   // "red", "orange", "yellow", "green", "cyan", "blue", "purple", "white"
Rgb palette_colour(int colour);
const char* class_word(int cls);       // "t-shirt", .., "ankle boot" (Fashion-MNIST label order)
// The index of a colour name or class word (exact, lowercase), nullopt when there is none.
std::optional<int> colour_from_name(const std::string& name);
std::optional<int> class_from_word(const std::string& word);

// The colour-class pairs kept out of training images and captions, so evaluation can ask for unseen pairs.
bool is_held_out(int colour, int cls);

struct SceneItem {
  int cls = 0;
  int colour = 0;
  Cell cell = Cell::TopLeft;
  int dx = 0, dy = 0;           // jitter, each in -kMaxJitter..kMaxJitter
  int64_t source_index = -1;    // the Fashion-MNIST image drawn; -1 in a layout (a caption's content)
};

// Items are kept in cell order (the order canonical captions name them).
struct Scene {
  std::vector<SceneItem> items;
};

// Whether two scenes name the same items (class, colour, cell), whatever their jitter, sources and order.
bool same_layout(const Scene& a, const Scene& b);

// Puts a scene's items in cell order (the order canonical captions name them), keeping ties in place.
void sort_by_cell(Scene& scene);

// Error(Input) naming the problem unless `scene` follows the grammar: 1..4 items with known classes and colours,
// distinct cells, the centre only for a lone item, jitter within bounds.
void check_scene(const Scene& scene);

// Which colour-class pairs sampling may use: training never sees held-out ones; evaluation asks for all.
enum class Pairs { Seen, All };

// The content of a scene drawn from `seed` (no sources): 1..4 items with equal chance; a lone item goes to
// the centre one time in five, else to a quadrant; items take distinct random quadrants, uniform colour and
// class (pairs outside `pairs` drawn again), and jitter uniform in -2..2 on each axis.
Scene sample_layout(uint64_t seed, Pairs pairs = Pairs::Seen);
// The same with exactly `count` items (1..4): Error(Usage) otherwise.
Scene sample_layout(uint64_t seed, int count, Pairs pairs);

// A fixed benchmark of 2000 layouts (all pairs allowed, so each held-out pair comes up dozens of times): item
// counts 1, 2, 3, 4 in turn, so every prefix of a multiple of 4 is balanced by count. No sources.
const std::vector<Scene>& benchmark_layouts();

}  // namespace ditgen::data
