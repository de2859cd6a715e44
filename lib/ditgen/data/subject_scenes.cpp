// The subject's renderings and the prior-preservation scenes, captioned with and without the rare word.
#include "ditgen/data/subject_scenes.h"

#include <algorithm>
#include <array>

#include "ditgen/core/error.h"
#include "ditgen/data/moving_captions.h"
#include "ditgen/data/scene_captions.h"
#include "ditgen/data/scene_random.h"

namespace ditgen::data {

namespace {

constexpr uint64_t kPriorStream = 11, kLayoutStream = 12, kSourceStream = 13, kCaptionStream = 14;
constexpr std::array<Cell, 5> kCells{Cell::TopLeft, Cell::TopRight, Cell::BottomLeft, Cell::BottomRight, Cell::Center};

// One item of class `cls` alone: a seen colour and cell drawn by `random` (or the cell given).
Scene single_item(int cls, Cell cell, SceneRandom& random) {
  std::vector<int> colours;
  for (int c = 0; c < kSceneColours; ++c)
    if (!is_held_out(c, cls)) colours.push_back(c);
  SceneItem item;
  item.cls = cls;
  item.colour = colours[static_cast<size_t>(random.below(static_cast<int>(colours.size())))];
  item.cell = cell;
  return Scene{{item}};
}

}  // namespace

void check_subject_options(const SubjectOptions& o) {
  const bool letters = !o.word.empty() && o.word.size() <= 16 &&
                       std::all_of(o.word.begin(), o.word.end(), [](char c) { return c >= 'a' && c <= 'z'; });
  if (!letters) throw Error(ErrorKind::Usage, "subject.word must be 1 to 16 lowercase letters, not '" + o.word + "'");
  const std::vector<std::string>& used = moving_caption_words();
  if (std::binary_search(used.begin(), used.end(), o.word))
    throw Error(ErrorKind::Usage, "subject.word '" + o.word + "' is a word captions already use: pick a rare one");
  if (o.renderings < 1 || o.renderings > 16)
    throw Error(ErrorKind::Usage, "subject.renderings must be in 1..16, not " + std::to_string(o.renderings));
  if (!(o.prior_share >= 0 && o.prior_share < 1)) throw Error(ErrorKind::Usage, "subject.prior_share must be in [0, 1)");
}

std::string subject_caption(const Scene& scene, const std::string& word, size_t subject) {
  if (subject >= scene.items.size()) throw Error(ErrorKind::Usage, "a subject caption names the subject's item");
  std::string caption;
  for (size_t i = 0; i < scene.items.size(); ++i) {
    const SceneItem& item = scene.items[i];
    caption += std::string(i ? " and a " : "a ") + colour_name(item.colour) + " " + (i == subject ? word + " " : "") +
               class_word(item.cls) + " in the " + cell_name(item.cell);
  }
  return caption;
}

std::vector<Scene> subject_layouts(int cls, int count, uint64_t seed) {
  SceneRandom random(mix_seed(seed, kLayoutStream));
  std::array<Cell, 5> cells = kCells;
  std::vector<Scene> out;
  for (int k = 0; k < count; ++k) {
    if (k % 5 == 0) random.shuffle(cells.begin(), cells.end());
    out.push_back(single_item(cls, cells[static_cast<size_t>(k % 5)], random));
  }
  return out;
}

SubjectScenesDataset::SubjectScenesDataset(const std::filesystem::path& dir, int64_t size, const SubjectOptions& options)
    : SceneDataset(size, "subject scenes"), train_(dir, Split::Train, kItemSize), test_(dir, Split::Test, kItemSize),
      train_pool_(train_), options_(options) {
  check_subject_options(options);
  if (options.subject < 0 || options.subject >= test_.size())
    throw Error(ErrorKind::Usage, "subject " + std::to_string(options.subject) + " is outside the test split's 0.." +
                                      std::to_string(test_.size() - 1));
  subject_class_ = static_cast<int>(test_.get({options.subject}).labels[0].item<int64_t>());
  subject_image_ = item_greys(test_, {options.subject})[0];  // [28, 28]
  renderings_ = subject_layouts(subject_class_, options.renderings, options.seed);
  for (Scene& s : renderings_) s.items.front().source_index = options.subject;
}

bool SubjectScenesDataset::is_prior(int64_t index) const {
  check_index(index);
  SceneRandom random(mix_seed(options_.seed + static_cast<uint64_t>(index), kPriorStream));
  return static_cast<double>(random.next() >> 11) * 0x1.0p-53 < options_.prior_share;
}

Batch SubjectScenesDataset::get(const std::vector<int64_t>& indices) const {
  Batch batch;
  std::vector<at::Tensor> images;
  for (int64_t i : indices) {
    const uint64_t seed = options_.seed + static_cast<uint64_t>(i);
    if (is_prior(i)) {
      SceneRandom random(mix_seed(seed, kLayoutStream));
      Scene prior = single_item(subject_class_, kCells[static_cast<size_t>(random.below(5))], random);
      prior = with_sources(prior, train_pool_, mix_seed(seed, kSourceStream));
      images.push_back(render(prior, train_));
      batch.captions.push_back(paraphrase(prior, mix_seed(seed, kCaptionStream)));
    } else {
      const Scene& subject = renderings_[static_cast<size_t>(i % options_.renderings)];
      images.push_back(render(subject, test_));
      batch.captions.push_back(subject_caption(subject, options_.word));
    }
  }
  batch.images = at::stack(images);                                              // [B, 3, 64, 64]
  batch.labels = at::zeros({static_cast<int64_t>(indices.size())}, at::kLong);  // [B]
  return batch;
}

}  // namespace ditgen::data
