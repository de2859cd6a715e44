#include "ditgen/eval/colour_tracks.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "ditgen/core/error.h"
#include "ditgen/eval/scene_eval.h"

namespace ditgen::eval {

namespace {

using data::kSceneSize;
constexpr int kCrop = data::kCellSize;  // 32: the classifier's input, the 28x28 item and a 2-pixel margin
constexpr int64_t kPlane = int64_t{kSceneSize} * kSceneSize;

void check_clips(const at::Tensor& clips, const std::vector<data::MovingScene>& layouts) {
  if (!clips.defined() || clips.dim() != 5 || clips.size(1) < 1 || clips.size(2) != 3 || clips.size(3) != kSceneSize ||
      clips.size(4) != kSceneSize)
    throw Error(ErrorKind::Usage, "tracking needs clips [N, F, 3, 64, 64], got " +
                                      (clips.defined() ? c10::str(clips.sizes()) : std::string("none")));
  if (layouts.empty()) throw Error(ErrorKind::Usage, "tracking needs at least one clip");
  if (clips.size(0) != static_cast<int64_t>(layouts.size()))
    throw Error(ErrorKind::Usage, "tracking got " + std::to_string(clips.size(0)) + " clips for " +
                                      std::to_string(layouts.size()) + " layouts");
  for (const data::MovingScene& layout : layouts) data::check_moving_layout(layout);
}

// One frame's pixels as the tracker reads them.
struct FramePixels {
  std::vector<float> brightness = std::vector<float>(kPlane);  // the brightest channel, [0, 1]
  std::vector<int> colour = std::vector<int>(kPlane);          // nearest palette colour where lit, else -1

  // From a frame [3, 64, 64] in [-1, 1] (contiguous float32); non-finite values read as black.
  void read(const float* frame) {
    for (int64_t i = 0; i < kPlane; ++i) {
      float rgb[3];
      for (int ch = 0; ch < 3; ++ch) {
        const float v = frame[ch * kPlane + i];
        rgb[ch] = std::isfinite(v) ? (std::clamp(v, -1.0f, 1.0f) + 1) / 2 : 0.0f;
      }
      brightness[static_cast<size_t>(i)] = std::max({rgb[0], rgb[1], rgb[2]});
      colour[static_cast<size_t>(i)] =
          brightness[static_cast<size_t>(i)] > kLitLevel ? nearest_palette_colour(rgb[0], rgb[1], rgb[2]) : -1;
    }
  }
};

// Where an item of `colour` is in a frame, or not found.
struct Sighting {
  std::array<double, 2> centroid{};    // brightness-weighted, of its pixels: what its motion is read from
  std::array<double, 2> box_centre{};  // of its pixels within kBoxReach of the centroid: where its crop is centred
};

// Fashion-MNIST items are centred by their bounding box, not their mass (a bag's handle, a sandal's heel pull
// the centroid aside), so the crop follows the box; pixels further than this from the centroid on either
// axis are stray specks, not the item (a real item's reach from its centroid is about 14 to 20 pixels).
constexpr int kBoxReach = 20;

bool sight(const FramePixels& p, int colour, Sighting& seen) {
  double sum = 0, sx = 0, sy = 0;
  int64_t count = 0;
  for (int64_t i = 0; i < kPlane; ++i) {
    if (p.colour[static_cast<size_t>(i)] != colour) continue;
    const double w = p.brightness[static_cast<size_t>(i)];
    sum += w;
    sx += w * static_cast<double>(i % kSceneSize);
    sy += w * static_cast<double>(i / kSceneSize);
    ++count;
  }
  if (count < kMinTrackPixels) return false;
  seen.centroid = {sx / sum, sy / sum};
  int x0 = kSceneSize, x1 = -1, y0 = kSceneSize, y1 = -1;
  for (int64_t i = 0; i < kPlane; ++i) {
    const int x = static_cast<int>(i % kSceneSize), y = static_cast<int>(i / kSceneSize);
    if (p.colour[static_cast<size_t>(i)] != colour || std::abs(x - seen.centroid[0]) > kBoxReach ||
        std::abs(y - seen.centroid[1]) > kBoxReach)
      continue;
    x0 = std::min(x0, x);
    x1 = std::max(x1, x);
    y0 = std::min(y0, y);
    y1 = std::max(y1, y);
  }
  seen.box_centre = {(x0 + x1) / 2.0, (y0 + y1) / 2.0};  // the centroid's own pixel is always in the box
  return true;
}

// The grey 32x32 crop [32 * 32] in [-1, 1] centred on `centre`: black outside the canvas and where another
// colour is lit.
void crop_around(const FramePixels& p, int colour, const std::array<double, 2>& centre, float* out) {
  const float peak = palette_peak(colour);
  const double half = (kCrop - 1) / 2.0;  // 15.5: the crop's centre from its corner
  const int ox = static_cast<int>(std::lround(centre[0] - half)), oy = static_cast<int>(std::lround(centre[1] - half));
  for (int y = 0; y < kCrop; ++y)
    for (int x = 0; x < kCrop; ++x) {
      const int cx = ox + x, cy = oy + y;
      float grey = 0;
      if (cx >= 0 && cy >= 0 && cx < kSceneSize && cy < kSceneSize) {
        const size_t i = static_cast<size_t>(cy) * kSceneSize + static_cast<size_t>(cx);
        if (p.colour[i] == colour || p.colour[i] < 0) grey = std::min(p.brightness[i] / peak, 1.0f);
      }
      out[y * kCrop + x] = grey * 2 - 1;
    }
}

}  // namespace

int ItemTrack::found_frames() const { return static_cast<int>(std::count(found.begin(), found.end(), true)); }

ClipTracks track_items(const at::Tensor& clips, const std::vector<data::MovingScene>& layouts) {
  check_clips(clips, layouts);
  const int64_t frames = clips.size(1);
  int64_t m = 0;
  for (const data::MovingScene& layout : layouts) m += static_cast<int64_t>(layout.items.size());
  ClipTracks tracks;
  tracks.crops = at::empty({m * frames, 1, kCrop, kCrop}, at::kFloat);  // [M * F, 1, 32, 32]
  float* crop = tracks.crops.data_ptr<float>();
  const at::Tensor all = clips.detach().to(at::kCPU, at::kFloat).contiguous();  // [N, F, 3, 64, 64]
  std::vector<FramePixels> pixels(static_cast<size_t>(frames));
  for (size_t n = 0; n < layouts.size(); ++n) {
    for (int64_t f = 0; f < frames; ++f)
      pixels[static_cast<size_t>(f)].read(all.data_ptr<float>() + (static_cast<int64_t>(n) * frames + f) * 3 * kPlane);
    for (const data::MovingItem& item : layouts[n].items) {
      ItemTrack track;
      track.found.assign(static_cast<size_t>(frames), false);
      track.centre.assign(static_cast<size_t>(frames), {0, 0});
      for (int64_t f = 0; f < frames; ++f, crop += kCrop * kCrop) {
        const FramePixels& frame = pixels[static_cast<size_t>(f)];
        Sighting seen;
        if (sight(frame, item.colour, seen)) {
          track.found[static_cast<size_t>(f)] = true;
          track.centre[static_cast<size_t>(f)] = seen.centroid;
          crop_around(frame, item.colour, seen.box_centre, crop);
        } else {
          std::fill(crop, crop + kCrop * kCrop, -1.0f);
        }
      }
      tracks.items.push_back(std::move(track));
    }
  }
  return tracks;
}

Motion read_motion(const ItemTrack& track) {
  Motion m;
  std::vector<double> t, x, y;
  for (size_t f = 0; f < track.found.size(); ++f)
    if (track.found[f]) {
      t.push_back(static_cast<double>(f));
      x.push_back(track.centre[f][0]);
      y.push_back(track.centre[f][1]);
    }
  if (t.size() < 2) return m;
  m.tracked = true;
  const double n = static_cast<double>(t.size());
  double mt = 0, mx = 0, my = 0;
  for (size_t i = 0; i < t.size(); ++i) {
    mt += t[i] / n;
    mx += x[i] / n;
    my += y[i] / n;
  }
  double stt = 0, stx = 0, sty = 0;  // least squares: v = cov(t, position) / var(t)
  for (size_t i = 0; i < t.size(); ++i) {
    stt += (t[i] - mt) * (t[i] - mt);
    stx += (t[i] - mt) * (x[i] - mx);
    sty += (t[i] - mt) * (y[i] - my);
  }
  m.vx = stx / stt;
  m.vy = sty / stt;
  const bool sideways = std::abs(m.vx) >= std::abs(m.vy);
  const double along = sideways ? m.vx : m.vy;
  m.moving = std::abs(along) >= kMinSpeed;
  if (m.moving)
    m.direction = sideways ? (along < 0 ? data::Direction::Left : data::Direction::Right)
                           : (along < 0 ? data::Direction::Up : data::Direction::Down);
  for (size_t f = 1; f < track.found.size(); ++f)
    if (track.found[f] && track.found[f - 1]) {
      m.jitter_sum += std::hypot(track.centre[f][0] - track.centre[f - 1][0] - m.vx,
                                 track.centre[f][1] - track.centre[f - 1][1] - m.vy);
      ++m.steps;
    }
  return m;
}

}  // namespace ditgen::eval
