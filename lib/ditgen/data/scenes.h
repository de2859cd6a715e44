// FashionScenes: 64x64 colour scenes of up to four Fashion-MNIST items, each tinted with a palette colour and
// placed in a quadrant (or, alone, the centre), with captions that name every item. The grammar (cells,
// palette, class words, held-out colour-class pairs) is fixed: datasets, prompts and the evaluator share it.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "ditgen/data/dataset.h"
#include "ditgen/data/fashion_mnist.h"

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

// Renders scenes whose sources index `source` (any padding): [N, 3, 64, 64] float32 in [-1, 1], black
// (-1) background, each item pixel grey / 255 * colour per channel. Error(Usage) for a scene without sources
// or with indices outside the source; Error(Input) for one breaking the grammar.
at::Tensor render(const std::vector<Scene>& scenes, const FashionMnist& source);
at::Tensor render(const Scene& scene, const FashionMnist& source);  // [3, 64, 64]

// A fixed benchmark of 2000 layouts (all pairs allowed, so each held-out pair comes up dozens of times): item
// counts 1, 2, 3, 4 in turn, so every prefix of a multiple of 4 is balanced by count. No sources.
const std::vector<Scene>& benchmark_layouts();
// Their canonical captions, in the same order.
std::vector<std::string> benchmark_prompts();

// Training scenes: example i is sample_scene(seed + i) on the train split with a paraphrased caption (the
// canonical one half of the time). Deterministic and indexable; labels are all 0 (one class, "scene"):
// the captions are the condition.
class ScenesDataset : public Dataset {
 public:
  // Loads the Fashion-MNIST split from `dir`; Error(Input) when it is missing, Error(Usage) for size < 1.
  ScenesDataset(const std::filesystem::path& dir, Split split, int64_t size, uint64_t seed,
                Pairs pairs = Pairs::Seen);

  int64_t size() const override { return size_; }
  int channels() const override { return 3; }
  int height() const override { return kSceneSize; }
  int width() const override { return kSceneSize; }
  const std::vector<std::string>& class_names() const override;
  // Images [B, 3, 64, 64], labels [B] (zeros) and captions; Error(Usage) for an index outside 0..size()-1.
  Batch get(const std::vector<int64_t>& indices) const override;

  Scene scene(int64_t index) const;
  std::string caption(int64_t index) const;  // the training caption (a paraphrase)

 private:
  void check_index(int64_t index) const;

  FashionMnist source_;
  ItemPool pool_;
  int64_t size_;
  uint64_t seed_;
  Pairs pairs_;
};

}  // namespace ditgen::data
