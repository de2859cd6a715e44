#include "ditgen/data/moving_scenes.h"

#include <cmath>

#include "ditgen/core/error.h"
#include "ditgen/data/scene_random.h"

namespace ditgen::data {

namespace {

// The streams of an example's seed: what is drawn from one must not shift when another changes.
constexpr uint64_t kSourceStream = 1;
constexpr uint64_t kCaptionStream = 2;
constexpr uint64_t kPlacementStream = 3;
constexpr uint64_t kKindStream = 4;  // still scene or moving clip

}  // namespace

MovingScene realise_clip(const MovingScene& layout, const ItemPool& pool, int frames, uint64_t seed) {
  MovingScene clip = place_items(layout, frames, mix_seed(seed, kPlacementStream));
  SceneRandom random(mix_seed(seed, kSourceStream));
  for (MovingItem& item : clip.items) item.source_index = pool.pick(item.cls, random.next());
  return clip;
}

MovingScene sample_clip(uint64_t seed, const ItemPool& pool, int frames, Pairs pairs) {
  return realise_clip(sample_moving_layout(seed, pairs), pool, frames, seed);
}

at::Tensor render_clips(const std::vector<MovingScene>& clips, const FashionMnist& source, int frames) {
  check_frames(frames);
  std::vector<int64_t> ids;
  for (const MovingScene& clip : clips) {
    check_moving_scene(clip, frames);
    for (const MovingItem& item : clip.items) {
      if (item.source_index < 0)
        throw Error(ErrorKind::Usage,
                    "moving scenes: rendering needs a source image for every item (a layout has none)");
      ids.push_back(item.source_index);
    }
  }
  const int64_t n = static_cast<int64_t>(clips.size());
  at::Tensor canvas = at::zeros({n, frames, 3, kSceneSize, kSceneSize}, at::kFloat);  // [N, F, 3, 64, 64] in [0, 1]
  if (ids.empty()) return canvas.sub_(1);
  const at::Tensor grey = item_greys(source, ids);  // [M, 28, 28]
  const float* g = grey.data_ptr<float>();
  float* out = canvas.data_ptr<float>();
  constexpr int64_t image = int64_t{3} * kSceneSize * kSceneSize, item_pixels = int64_t{kItemSize} * kItemSize;
  for (int64_t c = 0; c < n; ++c) {
    const std::vector<MovingItem>& items = clips[static_cast<size_t>(c)].items;
    for (int f = 0; f < frames; ++f)
      for (size_t k = 0; k < items.size(); ++k)  // in drawing order: the later item on top
        draw_item(out + (c * frames + f) * image, g + static_cast<int64_t>(k) * item_pixels, items[k].colour,
                  item_position(items[k], f));
    g += static_cast<int64_t>(items.size()) * item_pixels;
  }
  return canvas.mul_(2).sub_(1);
}

at::Tensor render_clip(const MovingScene& clip, const FashionMnist& source, int frames) {
  return render_clips(std::vector{clip}, source, frames)[0];
}

MovingScenesDataset::MovingScenesDataset(const std::filesystem::path& dir, Split split, int64_t size, uint64_t seed,
                                         const MovingScenesOptions& options)
    : source_(dir, split, kItemSize), pool_(source_), size_(size), seed_(seed), options_(options) {
  if (size < 1)
    throw Error(ErrorKind::Usage, "moving scenes: a dataset needs at least 1 clip, not " + std::to_string(size));
  check_frames(options.frames);
  if (!(options.still_share >= 0 && options.still_share <= 1))  // NaN fails too
    throw Error(ErrorKind::Usage,
                "moving scenes: the share of still scenes must be in 0..1, not " + std::to_string(options.still_share));
}

const std::vector<std::string>& MovingScenesDataset::class_names() const {
  static const std::vector<std::string> names = {"moving", "still"};
  return names;
}

uint64_t MovingScenesDataset::seed_of(int64_t index) const {
  if (index < 0 || index >= size_)
    throw Error(ErrorKind::Usage,
                "moving scenes: index " + std::to_string(index) + " is outside 0.." + std::to_string(size_ - 1));
  return seed_ + static_cast<uint64_t>(index);
}

bool MovingScenesDataset::is_still(int64_t index) const {
  const uint64_t draw = SceneRandom(mix_seed(seed_of(index), kKindStream)).next();
  return std::ldexp(static_cast<double>(draw >> 11), -53) < options_.still_share;  // uniform in [0, 1)
}

MovingScene MovingScenesDataset::clip(int64_t index) const {
  if (is_still(index))
    throw Error(ErrorKind::Usage, "moving scenes: example " + std::to_string(index) + " is a still scene");
  return sample_clip(seed_of(index), pool_, options_.frames, options_.pairs);
}

Scene MovingScenesDataset::still(int64_t index) const {
  if (!is_still(index)) throw Error(ErrorKind::Usage, "moving scenes: example " + std::to_string(index) + " moves");
  return sample_scene(seed_of(index), pool_, options_.pairs);
}

std::string MovingScenesDataset::caption(int64_t index) const {
  const uint64_t seed = mix_seed(seed_of(index), kCaptionStream);
  return is_still(index) ? paraphrase(still(index), seed) : moving_paraphrase(clip(index), seed);
}

std::string MovingScenesDataset::canonical(int64_t index) const {
  return is_still(index) ? canonical_caption(still(index)) : canonical_moving_caption(clip(index));
}

Batch MovingScenesDataset::get(const std::vector<int64_t>& indices) const {
  const int64_t b = static_cast<int64_t>(indices.size());
  std::vector<Scene> stills;
  std::vector<MovingScene> clips;
  std::vector<int64_t> kinds;
  Batch batch;
  for (int64_t i : indices) {
    const bool still_scene = is_still(i);
    kinds.push_back(still_scene ? 1 : 0);
    const uint64_t caption_seed = mix_seed(seed_of(i), kCaptionStream);
    if (still_scene) {
      stills.push_back(still(i));
      batch.captions.push_back(paraphrase(stills.back(), caption_seed));
    } else {
      clips.push_back(clip(i));
      batch.captions.push_back(moving_paraphrase(clips.back(), caption_seed));
    }
  }
  const at::Tensor moving = render_clips(clips, source_, options_.frames);                  // [Bm, F, 3, 64, 64]
  const at::Tensor still_images = stills.empty() ? at::Tensor() : render(stills, source_);  // [Bs, 3, 64, 64]
  batch.images = at::empty({b, options_.frames, 3, kSceneSize, kSceneSize}, at::kFloat);    // [B, F, 3, 64, 64]
  int64_t m = 0, s = 0;
  for (int64_t i = 0; i < b; ++i)
    batch.images[i].copy_(kinds[static_cast<size_t>(i)] ? still_images[s++].unsqueeze(0).expand_as(batch.images[i])
                                                        : moving[m++]);
  batch.labels = at::tensor(kinds, at::kLong);  // [B]
  batch.images = batch.images.transpose(1, 2).contiguous();  // [B, 3, F, 64, 64]
  return batch;
}

}  // namespace ditgen::data
