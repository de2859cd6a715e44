#include "ditgen/eval/moving_scene_eval.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "ditgen/core/error.h"
#include "ditgen/data/scene_random.h"
#include "ditgen/eval/colour_tracks.h"
#include "ditgen/eval/fid.h"

namespace ditgen::eval {

namespace {

constexpr int64_t kMotionFeatures = 5;  // per item slot: vx, vy, step jitter, feature flicker, found share
constexpr int64_t kClipFeatures = FmnistClassifierImpl::kFeatures + data::kMaxMovingItems * kMotionFeatures;
constexpr uint64_t kFloorStream = 1;  // the floor's real clips: other starts and sources than the ceiling's

// The class found in most of a track's frames (ties to the lower class), -1 when it is never found.
int64_t majority_class(const ItemTrack& track, const int64_t* classes) {
  std::array<int, FmnistClassifierImpl::kClasses> votes{};
  for (size_t f = 0; f < track.found.size(); ++f)
    if (track.found[f]) ++votes[static_cast<size_t>(classes[f])];
  if (track.found_frames() == 0) return -1;
  return std::max_element(votes.begin(), votes.end()) - votes.begin();
}

// The standard deviation over the found frames of a track's features [F, 256], averaged over the features:
// how much the item's look changes from frame to frame (0 for a real item moving clear of others).
double flicker(const ItemTrack& track, const at::Tensor& features) {
  std::vector<int64_t> rows;
  for (size_t f = 0; f < track.found.size(); ++f)
    if (track.found[f]) rows.push_back(static_cast<int64_t>(f));
  if (rows.size() < 2) return 0;
  return features.index_select(0, at::tensor(rows, at::kLong)).std(0, /*unbiased=*/false).mean().item<double>();
}

}  // namespace

nlohmann::json MovingScores::to_json() const {
  nlohmann::json j = SplitTallies::to_json();
  j["direction_accuracy"] = item_direction.accuracy();
  j["frame_accuracy"] = frames.accuracy();
  j["class_consistency"] = consistent.accuracy();
  j["step_jitter_px"] = step_jitter();
  j["speed_px"] = speed();
  j["item_class"] = item_class.to_json();
  j["item_colour"] = item_colour.to_json();
  j["item_direction"] = item_direction.to_json();
  j["frames"] = frames.to_json();
  j["consistent_frames"] = consistent.to_json();
  return j;
}

MovingAnalysis analyse_moving_scenes(FmnistClassifier& classifier, const at::Tensor& clips,
                                     const std::vector<data::MovingScene>& layouts) {
  if (clips.defined() && clips.dim() == 5 && clips.size(1) < 2)
    throw Error(ErrorKind::Usage,
                "scoring clips needs at least 2 frames to see motion, got " + std::to_string(clips.size(1)));
  const ClipTracks tracks = track_items(clips, layouts);  // crops [M * F, 1, 32, 32]
  const int64_t frames = clips.size(1);
  auto features_of = [&](const at::Tensor& x) { return classifier->features(x); };
  auto classes_of = [&](const at::Tensor& f) { return classifier->classify(f).argmax(1); };
  const at::Tensor features = in_classifier_batches(classifier, tracks.crops, features_of);      // [M * F, 256]
  const at::Tensor classes = in_classifier_batches(classifier, features, classes_of).contiguous();  // [M * F]
  const at::Tensor item_features = features.to(at::kDouble).view({-1, frames, features.size(1)});  // [M, F, 256]

  MovingAnalysis a;
  MovingScores& s = a.scores;
  a.features = at::zeros({static_cast<int64_t>(layouts.size()), kClipFeatures}, at::kDouble);  // [N, 266]
  auto row_of = a.features.accessor<double, 2>();
  size_t j = 0;  // the item's index among all named items
  for (size_t n = 0; n < layouts.size(); ++n) {
    const data::MovingScene& layout = layouts[n];
    bool scene_right = true, held_out = false;
    at::Tensor appearance = at::zeros({features.size(1)}, at::kDouble);
    int64_t appearance_frames = 0;
    for (size_t slot = 0; slot < layout.items.size(); ++slot, ++j) {
      const data::MovingItem& item = layout.items[slot];
      const ItemTrack& track = tracks.items[j];
      const int64_t* cls = classes.data_ptr<int64_t>() + static_cast<int64_t>(j) * frames;
      const int found = track.found_frames();
      const int64_t majority = majority_class(track, cls);
      const Motion motion = read_motion(track);
      const bool colour_right = 2 * found >= frames;
      const bool class_right = colour_right && majority == item.cls;
      const bool direction_right = motion.moving && motion.direction == item.direction;
      const bool right = class_right && direction_right, unseen = data::is_held_out(item.colour, item.cls);
      s.add_item(layout.items.size(), unseen, right);
      s.item_class.add(class_right);
      s.item_colour.add(colour_right);
      s.item_direction.add(direction_right);
      scene_right = scene_right && right;
      held_out = held_out || unseen;
      for (int64_t f = 0; f < frames; ++f) {
        const bool there = track.found[static_cast<size_t>(f)];
        s.frames.add(there && cls[f] == item.cls);
        if (there) s.consistent.add(cls[f] == majority);
      }
      s.jitter_sum += motion.jitter_sum;
      s.steps += motion.steps;
      if (motion.tracked) {
        s.speed_sum += std::hypot(motion.vx, motion.vy);
        ++s.tracks;
      }

      const at::Tensor own = item_features[static_cast<int64_t>(j)];  // [F, 256]
      for (int64_t f = 0; f < frames; ++f)
        if (track.found[static_cast<size_t>(f)]) {
          appearance += own[f];
          ++appearance_frames;
        }
      const int64_t at = FmnistClassifierImpl::kFeatures + static_cast<int64_t>(slot) * kMotionFeatures;
      const auto r = static_cast<int64_t>(n);
      row_of[r][at] = motion.vx;
      row_of[r][at + 1] = motion.vy;
      row_of[r][at + 2] = motion.steps > 0 ? motion.jitter_sum / static_cast<double>(motion.steps) : 0;
      row_of[r][at + 3] = flicker(track, own);
      row_of[r][at + 4] = static_cast<double>(found) / static_cast<double>(frames);
    }
    if (appearance_frames > 0)
      a.features[static_cast<int64_t>(n)].narrow(0, 0, features.size(1)).copy_(appearance / appearance_frames);
    s.add_scene(layout.items.size(), held_out, scene_right);
  }
  return a;
}

MovingScores score_moving_scenes(FmnistClassifier& classifier, const at::Tensor& clips,
                                 const std::vector<data::MovingScene>& layouts) {
  return analyse_moving_scenes(classifier, clips, layouts).scores;
}

at::Tensor real_clips(const data::FashionMnist& source, const std::vector<data::MovingScene>& layouts, int frames,
                      uint64_t seed) {
  const data::ItemPool pool(source);
  std::vector<data::MovingScene> clips;
  for (size_t i = 0; i < layouts.size(); ++i) clips.push_back(data::realise_clip(layouts[i], pool, frames, seed + i));
  return data::render_clips(clips, source, frames);  // [N, F, 3, 64, 64]
}

nlohmann::json evaluate_moving_scenes(FmnistClassifier& classifier, const at::Tensor& clips,
                                      const std::vector<data::MovingScene>& layouts, const data::FashionMnist& test,
                                      const data::FashionMnist& train, uint64_t seed) {
  if (layouts.size() < 2)
    throw Error(ErrorKind::Usage, "the moving-scene report needs at least 2 clips (a Fréchet distance), got " +
                                      std::to_string(layouts.size()));
  if (clips.defined() && clips.dim() == 5) data::check_frames(static_cast<int>(clips.size(1)));  // real clips fit
  const MovingAnalysis generated = analyse_moving_scenes(classifier, clips, layouts);            // checks the rest
  const int frames = static_cast<int>(clips.size(1));
  const MovingAnalysis ceiling = analyse_moving_scenes(classifier, real_clips(test, layouts, frames, seed), layouts);
  const MovingAnalysis floor =
      analyse_moving_scenes(classifier, real_clips(train, layouts, frames, data::mix_seed(seed, kFloorStream)),
                            layouts);
  const Gaussian reference = feature_statistics(ceiling.features);
  const MovingScores& g = generated.scores;
  const MovingScores& c = ceiling.scores;

  return {{"generated", g.to_json()},
          {"ceiling", c.to_json()},
          {"ratio", g.ratio_json(c)},
          {"held_out_over_seen", g.held_out_over_seen()},
          {"direction_accuracy", g.item_direction.accuracy()},
          {"frame_accuracy", g.frames.accuracy()},
          {"class_consistency", g.consistent.accuracy()},
          {"step_jitter_px", g.step_jitter()},
          {"frechet",
           {{"distance", frechet_distance(feature_statistics(generated.features), reference)},
            {"floor", frechet_distance(feature_statistics(floor.features), reference)}}},
          {"clips", static_cast<int64_t>(layouts.size())},
          {"frames", frames}};
}

}  // namespace ditgen::eval
