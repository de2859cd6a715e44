#include "ditgen/data/scenes.h"

#include <algorithm>
#include <cstdlib>
#include <tuple>

#include "ditgen/core/error.h"
#include "ditgen/data/scene_random.h"
#include "ditgen/data/scene_captions.h"

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
constexpr uint64_t kSourceStream = 1;          // sources draw from their own stream of a scene's seed
constexpr uint64_t kCaptionStream = 2;         // as do training captions

void sort_by_cell(Scene& scene) {
  std::stable_sort(scene.items.begin(), scene.items.end(),
                   [](const SceneItem& a, const SceneItem& b) { return a.cell < b.cell; });
}

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

ItemPool::ItemPool(const FashionMnist& source) {
  const at::Tensor labels = source.all_labels().contiguous();  // [N] int64
  const int64_t* l = labels.data_ptr<int64_t>();
  for (int64_t i = 0; i < labels.numel(); ++i)
    if (l[i] >= 0 && l[i] < kSceneClasses) by_class_[static_cast<size_t>(l[i])].push_back(i);
  for (int c = 0; c < kSceneClasses; ++c)
    if (by_class_[static_cast<size_t>(c)].empty())
      throw Error(ErrorKind::Input, std::string("scenes: the Fashion-MNIST split has no ") + kClassWords[c]);
}

int64_t ItemPool::pick(int cls, uint64_t random) const {
  const std::vector<int64_t>& ids = by_class_.at(static_cast<size_t>(cls));
  return ids[static_cast<size_t>(random % ids.size())];
}

Scene with_sources(const Scene& layout, const ItemPool& pool, uint64_t seed) {
  Scene scene = layout;
  SceneRandom random(seed);
  for (SceneItem& item : scene.items) item.source_index = pool.pick(item.cls, random.next());
  return scene;
}

Scene sample_scene(uint64_t seed, const ItemPool& pool, Pairs pairs) {
  return with_sources(sample_layout(seed, pairs), pool, mix_seed(seed, kSourceStream));
}

at::Tensor render(const std::vector<Scene>& scenes, const FashionMnist& source) {
  std::vector<int64_t> ids;
  for (const Scene& scene : scenes) {
    check_scene(scene);
    for (const SceneItem& item : scene.items) {
      if (item.source_index < 0)
        throw Error(ErrorKind::Usage, "scenes: rendering needs a source image for every item (a layout has none)");
      ids.push_back(item.source_index);  // FashionMnist::get checks the range
    }
  }
  const int64_t n = static_cast<int64_t>(scenes.size());
  at::Tensor canvas = at::zeros({n, 3, kSceneSize, kSceneSize}, at::kFloat);  // [N, 3, 64, 64] in [0, 1]
  if (ids.empty()) return canvas.sub_(1);
  const int64_t pad = source.height(), before = (pad - kItemSize) / 2;
  // Back from [-1, 1] to grey / 255 (exact up to float rounding), dropping the padding.
  const at::Tensor grey = source.get(ids).images.narrow(2, before, kItemSize).narrow(3, before, kItemSize)
                              .add(1).div_(2);  // [M, 1, 28, 28]
  size_t k = 0;
  for (int64_t s = 0; s < n; ++s)
    for (const SceneItem& item : scenes[static_cast<size_t>(s)].items) {
      const Rgb c = kPalette[item.colour];
      const at::Tensor tint = at::tensor({c.r / 255.0f, c.g / 255.0f, c.b / 255.0f}).view({3, 1, 1});  // [3, 1, 1]
      const Point o = item_origin(item.cell);
      canvas[s].narrow(1, o.y + item.dy, kItemSize).narrow(2, o.x + item.dx, kItemSize)
          .copy_(grey[static_cast<int64_t>(k++)] * tint);  // [3, 28, 28]
    }
  return canvas.mul_(2).sub_(1);
}

at::Tensor render(const Scene& scene, const FashionMnist& source) { return render(std::vector{scene}, source)[0]; }

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

std::vector<std::string> benchmark_prompts() {
  std::vector<std::string> prompts;
  for (const Scene& scene : benchmark_layouts()) prompts.push_back(canonical_caption(scene));
  return prompts;
}

ScenesDataset::ScenesDataset(const std::filesystem::path& dir, Split split, int64_t size, uint64_t seed, Pairs pairs)
    : source_(dir, split, kItemSize), pool_(source_), size_(size), seed_(seed), pairs_(pairs) {
  if (size < 1) throw Error(ErrorKind::Usage, "scenes: a dataset needs at least 1 scene, not " + std::to_string(size));
}

const std::vector<std::string>& ScenesDataset::class_names() const {
  static const std::vector<std::string> names = {"scene"};
  return names;
}

void ScenesDataset::check_index(int64_t index) const {
  if (index < 0 || index >= size_)
    throw Error(ErrorKind::Usage, "scenes: index " + std::to_string(index) + " is outside 0.." +
                                      std::to_string(size_ - 1));
}

Scene ScenesDataset::scene(int64_t index) const {
  check_index(index);
  return sample_scene(seed_ + static_cast<uint64_t>(index), pool_, pairs_);
}

std::string ScenesDataset::caption(int64_t index) const {
  const uint64_t seed = seed_ + static_cast<uint64_t>(index);
  return paraphrase(scene(index), mix_seed(seed, kCaptionStream));
}

Batch ScenesDataset::get(const std::vector<int64_t>& indices) const {
  std::vector<Scene> scenes;
  Batch batch;
  for (int64_t i : indices) {
    scenes.push_back(scene(i));
    batch.captions.push_back(paraphrase(scenes.back(), mix_seed(seed_ + static_cast<uint64_t>(i), kCaptionStream)));
  }
  batch.images = render(scenes, source_);                                    // [B, 3, 64, 64]
  batch.labels = at::zeros({static_cast<int64_t>(indices.size())}, at::kLong);  // [B]
  return batch;
}

}  // namespace ditgen::data
