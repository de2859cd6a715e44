#include "ditgen/data/scenes.h"

#include "ditgen/core/error.h"
#include "ditgen/data/scene_random.h"

namespace ditgen::data {

namespace {

constexpr uint64_t kSourceStream = 1;   // sources draw from their own stream of a scene's seed
constexpr uint64_t kCaptionStream = 2;  // as do training captions

}  // namespace

ItemPool::ItemPool(const FashionMnist& source) {
  const at::Tensor labels = source.all_labels().contiguous();  // [N] int64
  const int64_t* l = labels.data_ptr<int64_t>();
  for (int64_t i = 0; i < labels.numel(); ++i)
    if (l[i] >= 0 && l[i] < kSceneClasses) by_class_[static_cast<size_t>(l[i])].push_back(i);
  for (int c = 0; c < kSceneClasses; ++c)
    if (by_class_[static_cast<size_t>(c)].empty())
      throw Error(ErrorKind::Input, std::string("scenes: the Fashion-MNIST split has no ") + class_word(c));
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

at::Tensor item_greys(const FashionMnist& source, const std::vector<int64_t>& ids) {
  const int64_t pad = source.height(), before = (pad - kItemSize) / 2;
  // Back from [-1, 1] to grey / 255 (exact up to float rounding), dropping the padding.
  return source.get(ids).images.narrow(2, before, kItemSize).narrow(3, before, kItemSize).add(1).div_(2)
      .view({-1, kItemSize, kItemSize}).contiguous();  // [M, 28, 28]
}

void draw_item(float* canvas, const float* grey, int colour, Point at) {
  const Rgb c = palette_colour(colour);
  const float tint[3] = {c.r / 255.0f, c.g / 255.0f, c.b / 255.0f};
  constexpr int plane = kSceneSize * kSceneSize;
  for (int y = 0; y < kItemSize; ++y)
    for (int x = 0; x < kItemSize; ++x) {
      const float g = grey[y * kItemSize + x];
      if (g <= 0) continue;  // unlit: what lies below shows through
      float* pixel = canvas + (at.y + y) * kSceneSize + at.x + x;
      for (int ch = 0; ch < 3; ++ch) pixel[ch * plane] = g * tint[ch];
    }
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
  const at::Tensor grey = item_greys(source, ids);  // [M, 28, 28]
  // Plain loops over the pixels: a training batch places hundreds of items, and a tensor op per item would
  // cost more than the model's step on the GPU.
  const float* g = grey.data_ptr<float>();
  float* out = canvas.data_ptr<float>();
  for (int64_t s = 0; s < n; ++s)
    for (const SceneItem& item : scenes[static_cast<size_t>(s)].items) {
      const Point o = item_origin(item.cell);
      draw_item(out + s * 3 * kSceneSize * kSceneSize, g, item.colour, {o.x + item.dx, o.y + item.dy});
      g += kItemSize * kItemSize;
    }
  return canvas.mul_(2).sub_(1);
}

at::Tensor render(const Scene& scene, const FashionMnist& source) { return render(std::vector{scene}, source)[0]; }

SceneDataset::SceneDataset(int64_t size, const char* what) : size_(size), what_(what) {
  if (size < 1)
    throw Error(ErrorKind::Usage, std::string(what) + ": a dataset needs at least 1 scene, not " + std::to_string(size));
}

const std::vector<std::string>& SceneDataset::class_names() const {
  static const std::vector<std::string> names = {"scene"};
  return names;
}

void SceneDataset::check_index(int64_t index) const {
  if (index < 0 || index >= size_)
    throw Error(ErrorKind::Usage, std::string(what_) + ": index " + std::to_string(index) + " is outside 0.." +
                                      std::to_string(size_ - 1));
}

ScenesDataset::ScenesDataset(const std::filesystem::path& dir, Split split, int64_t size, uint64_t seed, Pairs pairs)
    : SceneDataset(size, "scenes"), source_(dir, split, kItemSize), pool_(source_), seed_(seed), pairs_(pairs) {}

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
