#include "ditgen/eval/scene_eval.h"

#include <algorithm>
#include <cmath>
#include <string>

#include <c10/core/InferenceMode.h>

#include "ditgen/core/error.h"
#include "ditgen/data/scene_random.h"
#include "ditgen/eval/fid.h"

namespace ditgen::eval {

namespace {

using data::Cell;
using data::kCellSize;

constexpr uint64_t kJitterStream = 3;  // real scenes' jitter, apart from their sources

void check_images(const at::Tensor& images, const std::vector<data::Scene>& layouts) {
  if (!images.defined() || images.dim() != 4 || images.size(1) != 3 || images.size(2) != data::kSceneSize ||
      images.size(3) != data::kSceneSize)
    throw Error(ErrorKind::Usage, "scene scoring needs images [N, 3, 64, 64], got " +
                                      (images.defined() ? c10::str(images.sizes()) : std::string("none")));
  if (layouts.empty()) throw Error(ErrorKind::Usage, "scene scoring needs at least one image");
  if (images.size(0) != static_cast<int64_t>(layouts.size()))
    throw Error(ErrorKind::Usage, "scene scoring got " + std::to_string(images.size(0)) + " images for " +
                                      std::to_string(layouts.size()) + " layouts");
  for (const data::Scene& layout : layouts) data::check_scene(layout);
}

// Images [N, 3, 64, 64] in [-1, 1] as float32 CPU in [0, 1].
at::Tensor unit_range(const at::Tensor& images) {
  return images.detach().to(at::kCPU, at::kFloat).clamp(-1, 1).add(1).div_(2);  // [N, 3, 64, 64]
}

// The RGB crop [M, 3, 32, 32] in [0, 1] of every named item, in layout order.
at::Tensor rgb_crops(const at::Tensor& unit, const std::vector<data::Scene>& layouts) {
  std::vector<at::Tensor> crops;
  for (size_t s = 0; s < layouts.size(); ++s)
    for (const data::SceneItem& item : layouts[s].items) {
      const data::Point o = data::cell_origin(item.cell);
      const at::Tensor image = unit[static_cast<int64_t>(s)];                      // [3, 64, 64]
      crops.push_back(image.narrow(1, o.y, kCellSize).narrow(2, o.x, kCellSize));  // [3, 32, 32]
    }
  if (crops.empty()) return at::zeros({0, 3, kCellSize, kCellSize});
  return at::stack(crops);  // [M, 3, 32, 32]
}

// colours from unit-range crops [M, 3, 32, 32]: [M] int64, -1 where nothing is lit.
at::Tensor colours_of(const at::Tensor& unit_crops) {
  const at::Tensor lit = unit_crops.amax(1, true).gt(kLitLevel).to(at::kFloat);  // [M, 1, 32, 32]
  const at::Tensor sum = (unit_crops * lit).sum({2, 3});                           // [M, 3]
  const at::Tensor count = lit.sum({1, 2, 3});                                     // [M]
  at::Tensor colours = at::empty({sum.size(0)}, at::kLong);                        // [M]: the mean's direction
  const auto rgb = sum.accessor<float, 2>();
  const auto lit_pixels = count.accessor<float, 1>();
  auto out = colours.accessor<int64_t, 1>();
  for (int64_t m = 0; m < sum.size(0); ++m)
    out[m] = lit_pixels[m] > 0 ? nearest_palette_colour(rgb[m][0], rgb[m][1], rgb[m][2]) : -1;
  return colours;
}

// Grey crops [M, 1, 32, 32] in [-1, 1]: the brightest channel divided by the brightest channel of the crop's
// read colour (a real item's pixel is grey / 255 * colour, so this gives its grey back).
at::Tensor grey_of(const at::Tensor& unit_crops, const at::Tensor& colours) {
  std::vector<float> peak(data::kSceneColours + 1, 1.0f);  // [colour + 1]; slot 0 for "no colour" leaves it be
  for (int c = 0; c < data::kSceneColours; ++c) peak[static_cast<size_t>(c + 1)] = palette_peak(c);
  const at::Tensor scale = at::tensor(peak).index_select(0, colours + 1).view({-1, 1, 1, 1});  // [M, 1, 1, 1]
  return unit_crops.amax(1, true).div(scale).clamp_(0, 1).mul_(2).sub_(1);                    // [M, 1, 32, 32]
}

// Lit pixels [N, 4] of each quadrant. A centre item's 32x32 is left out, so for a lone centre item the
// quadrants count what lies outside it.
at::Tensor quadrant_lit_counts(const at::Tensor& unit, const std::vector<data::Scene>& layouts) {
  at::Tensor lit = unit.amax(1).gt(kLitLevel).to(at::kLong);  // [N, 64, 64]
  const data::Point c = data::cell_origin(Cell::Center);
  for (size_t s = 0; s < layouts.size(); ++s)
    if (layouts[s].items.front().cell == Cell::Center)
      lit[static_cast<int64_t>(s)].narrow(0, c.y, kCellSize).narrow(1, c.x, kCellSize).zero_();
  return lit.view({-1, 2, kCellSize, 2, kCellSize}).sum({2, 4}).view({-1, data::kQuadrants});  // [N, 4]
}

// `layouts` as real scenes: sources from `pool` and jitter, both drawn from seed + i for scene i.
std::vector<data::Scene> realise(const std::vector<data::Scene>& layouts, const data::ItemPool& pool, uint64_t seed) {
  std::vector<data::Scene> scenes;
  for (size_t i = 0; i < layouts.size(); ++i) {
    const uint64_t scene_seed = seed + i;
    data::Scene scene = data::with_sources(layouts[i], pool, scene_seed);
    data::SceneRandom jitter(data::mix_seed(scene_seed, kJitterStream));
    for (data::SceneItem& item : scene.items) {
      item.dx = jitter.below(2 * data::kMaxJitter + 1) - data::kMaxJitter;
      item.dy = jitter.below(2 * data::kMaxJitter + 1) - data::kMaxJitter;
    }
    scenes.push_back(std::move(scene));
  }
  return scenes;
}

}  // namespace

nlohmann::json Tally::to_json() const { return {{"accuracy", accuracy()}, {"right", right}, {"total", total}}; }

double accuracy_ratio(const Tally& generated, const Tally& ceiling) {
  return ceiling.accuracy() > 0 ? generated.accuracy() / ceiling.accuracy() : 0;
}

int nearest_palette_colour(float r, float g, float b) {
  // Palette colours as unit vectors; the largest dot product with (r, g, b) is the smallest angle.
  static const std::array<std::array<float, 3>, data::kSceneColours> directions = [] {
    std::array<std::array<float, 3>, data::kSceneColours> d{};
    for (int c = 0; c < data::kSceneColours; ++c) {
      const data::Rgb p = data::palette_colour(c);
      const float norm = std::sqrt(static_cast<float>(p.r * p.r + p.g * p.g + p.b * p.b));
      d[static_cast<size_t>(c)] = {p.r / norm, p.g / norm, p.b / norm};
    }
    return d;
  }();
  int best = 0;
  float best_dot = -1;
  for (int c = 0; c < data::kSceneColours; ++c) {
    const std::array<float, 3>& d = directions[static_cast<size_t>(c)];
    const float dot = r * d[0] + g * d[1] + b * d[2];
    if (dot > best_dot) {
      best = c;
      best_dot = dot;
    }
  }
  return best;
}

float palette_peak(int colour) {
  const data::Rgb p = data::palette_colour(colour);
  return static_cast<float>(std::max({p.r, p.g, p.b})) / 255.0f;
}

nlohmann::json SceneScores::to_json() const {
  nlohmann::json j = SplitTallies::to_json();
  j["item_class"] = item_class.to_json();
  j["item_colour"] = item_colour.to_json();
  j["empty_cells"] = empty_cells.to_json();
  return j;
}

at::Tensor read_colours(const at::Tensor& crops) {
  return colours_of(crops.detach().to(at::kCPU, at::kFloat).clamp(-1, 1).add(1).div_(2));
}

at::Tensor item_crops(const at::Tensor& images, const std::vector<data::Scene>& layouts) {
  check_images(images, layouts);
  const at::Tensor crops = rgb_crops(unit_range(images), layouts);  // [M, 3, 32, 32]
  return grey_of(crops, colours_of(crops));
}

SceneScores score_scenes(FmnistClassifier& classifier, const at::Tensor& images,
                         const std::vector<data::Scene>& layouts) {
  check_images(images, layouts);
  const at::Tensor unit = unit_range(images);                   // [N, 3, 64, 64]
  const at::Tensor crops = rgb_crops(unit, layouts);            // [M, 3, 32, 32]
  const at::Tensor colours = colours_of(crops);                 // [M]
  const at::Tensor classes = in_classifier_batches(classifier, grey_of(crops, colours), [&](const at::Tensor& x) {
    return classifier->forward(x).argmax(1);  // [b]
  });                                         // [M]
  const at::Tensor quadrant_lit = quadrant_lit_counts(unit, layouts);  // [N, 4]
  const auto cls_of = classes.accessor<int64_t, 1>(), colour_of = colours.accessor<int64_t, 1>();
  const auto lit_of = quadrant_lit.accessor<int64_t, 2>();

  SceneScores s;
  int64_t m = 0;
  for (size_t i = 0; i < layouts.size(); ++i) {
    const data::Scene& layout = layouts[i];
    bool scene_right = true, held_out = false;
    bool named[data::kQuadrants] = {};
    for (const data::SceneItem& item : layout.items) {
      const bool cls_right = cls_of[m] == item.cls;
      const bool colour_right = colour_of[m] == item.colour;
      ++m;
      const bool right = cls_right && colour_right, unseen = data::is_held_out(item.colour, item.cls);
      s.add_item(layout.items.size(), unseen, right);
      s.item_class.add(cls_right);
      s.item_colour.add(colour_right);
      scene_right = scene_right && right;
      held_out = held_out || unseen;
      if (item.cell != Cell::Center) named[static_cast<int>(item.cell)] = true;
    }
    for (int q = 0; q < data::kQuadrants; ++q) {
      if (named[q]) continue;
      const bool empty = lit_of[static_cast<int64_t>(i)][q] <= kEmptyCellLitPixels;
      s.empty_cells.add(empty);
      scene_right = scene_right && empty;
    }
    s.add_scene(layout.items.size(), held_out, scene_right);
  }
  return s;
}

at::Tensor real_scenes(const data::FashionMnist& test, int64_t count, uint64_t seed) {
  const std::vector<data::Scene>& benchmark = data::benchmark_layouts();
  if (count < 1 || count > static_cast<int64_t>(benchmark.size()))
    throw Error(ErrorKind::Usage, "real scenes: count " + std::to_string(count) + " is outside 1.." +
                                      std::to_string(benchmark.size()));
  const std::vector<data::Scene> layouts(benchmark.begin(), benchmark.begin() + count);
  const std::vector<data::Scene> scenes = realise(layouts, data::ItemPool(test), seed);
  return data::render(scenes, test);  // [count, 3, 64, 64]
}

SceneScores real_scene_ceiling(FmnistClassifier& classifier, const data::FashionMnist& test, int64_t count,
                               uint64_t seed) {
  const at::Tensor images = real_scenes(test, count, seed);  // [count, 3, 64, 64]
  const std::vector<data::Scene>& benchmark = data::benchmark_layouts();
  return score_scenes(classifier, images, std::vector<data::Scene>(benchmark.begin(), benchmark.begin() + count));
}

CropFid crop_fid(FmnistClassifier& classifier, const at::Tensor& images, const std::vector<data::Scene>& layouts,
                 const data::FashionMnist& test, const data::FashionMnist& train, uint64_t seed) {
  if (test.height() != kCellSize)
    throw Error(ErrorKind::Usage, "crop FID needs the test split padded to 32, not " + std::to_string(test.height()));
  const at::Tensor crops = item_crops(images, layouts);  // [M, 1, 32, 32]
  const int64_t m = crops.size(0);
  if (m < 2) throw Error(ErrorKind::Usage, "crop FID needs at least 2 items, got " + std::to_string(m));

  // Real scenes of the same layouts, with train-split items and the same jitter as training data: the crops
  // a perfect generator would give.
  const std::vector<data::Scene> real = realise(layouts, data::ItemPool(train), seed);
  const at::Tensor real_crops = item_crops(data::render(real, train), layouts);  // [M, 1, 32, 32]

  std::vector<int64_t> ids(static_cast<size_t>(std::min(m, test.size())));
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int64_t>(i);  // the first M test images
  auto features = [&](const at::Tensor& x) {  // [M, 256]
    return in_classifier_batches(classifier, x, [&](const at::Tensor& b) { return classifier->features(b); });
  };
  const Gaussian reference = feature_statistics(features(test.get(ids).images));
  return {frechet_distance(feature_statistics(features(crops)), reference),
          frechet_distance(feature_statistics(features(real_crops)), reference)};
}

}  // namespace ditgen::eval
