#include "ditgen/vae/tiled_decode.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include <c10/core/InferenceMode.h>

#include "ditgen/core/error.h"

namespace ditgen::vae {

namespace {

constexpr int kMaxTile = 1024;
constexpr int kAutoTiles[] = {64, 48, 32, 24, kMinAutoTile};
constexpr double kLiveTensors = 5;  // a resnet's input, norm, activation and conv outputs alive at once

// Blend weights along one side of a tile of `length` pixels: a linear ramp over the first `ramp` pixels when
// a tile comes before it, over the last when one comes after, 1 elsewhere. Every weight is > 0, so where
// tiles overlap the normalised sum cross-fades, and where one tile alone covers it is that tile.
at::Tensor ramp_weights(int64_t length, int64_t ramp, bool before, bool after) {
  at::Tensor i = at::arange(length, at::kFloat) + 0.5;  // [length]
  at::Tensor w = at::ones({length});
  if (before) w = at::minimum(w, i / ramp);
  if (after) w = at::minimum(w, (length - i) / ramp);
  return w;
}

}  // namespace

TileChoice parse_tile_choice(const std::string& text) {
  if (text == "auto") return {true, 0};
  if (text == "off") return {false, 0};
  int tile = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), tile);
  if (ec != std::errc() || end != text.data() + text.size() || tile < 8 || tile > kMaxTile)
    throw Error(ErrorKind::Usage, "--vae-tile must be auto, off, or a latent tile size in 8..1024; got '" + text + "'");
  return {false, tile};
}

std::string to_string(const TileChoice& choice) {
  return choice.automatic ? "auto" : choice.tile == 0 ? "off" : std::to_string(choice.tile);
}

uint64_t decode_peak_bytes(const VaeConfig& c, int64_t height, int64_t width, at::ScalarType dtype) {
  const std::vector<int>& b = c.block_out_channels;
  const int n = static_cast<int>(b.size());
  double widest = 0;  // elements of the largest activation: level i holds its own and the upsampled previous width
  for (int i = 0; i < n; ++i) {
    const double channels = std::max(b[n - 1 - i], b[n - 1 - std::max(i - 1, 0)]);
    widest = std::max(widest, channels * static_cast<double>(height * width) * std::pow(4.0, i));
  }
  const double tokens = static_cast<double>(height * width);
  const double bytes = (kLiveTensors * widest + (c.mid_block_attention ? tokens * tokens : 0)) *
                       static_cast<double>(c10::elementSize(dtype));
  return static_cast<uint64_t>(std::min(bytes, 1e18));
}

DecodePlan plan_decode(const VaeConfig& c, int64_t images, int64_t height, int64_t width, const TileChoice& choice,
                       at::ScalarType dtype, uint64_t available_bytes) {
  const double budget = static_cast<double>(available_bytes) / 2;
  const auto fitting = [&](int64_t h, int64_t w) {  // images decoded together at this size, at least 1
    const double one = static_cast<double>(decode_peak_bytes(c, h, w, dtype));
    return std::clamp<int64_t>(static_cast<int64_t>(budget / std::max(one, 1.0)), 1, std::max<int64_t>(images, 1));
  };
  const int64_t side = std::max(height, width);
  DecodePlan plan;
  if (choice.automatic) {
    if (static_cast<double>(decode_peak_bytes(c, height, width, dtype)) > budget)
      for (int tile : kAutoTiles) {
        if (tile >= side) continue;
        plan.tile = tile;
        if (static_cast<double>(decode_peak_bytes(c, std::min<int64_t>(tile, height), std::min<int64_t>(tile, width),
                                                  dtype)) <= budget)
          break;
      }
  } else if (choice.tile > 0 && choice.tile < side) {
    plan.tile = choice.tile;
  }
  plan.overlap = plan.tile / 4;
  plan.chunk = plan.tile ? fitting(std::min<int64_t>(plan.tile, height), std::min<int64_t>(plan.tile, width))
                         : fitting(height, width);
  return plan;
}

std::vector<int64_t> tile_origins(int64_t size, int tile, int overlap) {
  if (size <= tile) return {0};
  const int64_t stride = tile - overlap;
  const int64_t count = (size - overlap + stride - 1) / stride;  // ceil: neighbours share >= overlap
  std::vector<int64_t> origins;
  for (int64_t j = 0; j < count; ++j)
    origins.push_back(static_cast<int64_t>(std::llround(static_cast<double>(j * (size - tile)) / (count - 1))));
  return origins;
}

at::Tensor decode_in_tiles(const std::function<at::Tensor(const at::Tensor&)>& decode, int upscale,
                           const at::Tensor& latents, const DecodePlan& plan) {
  c10::InferenceMode inference;
  const int64_t N = latents.size(0), h = latents.size(2), w = latents.size(3), s = upscale;
  const int64_t chunk = std::max<int64_t>(plan.chunk, 1);
  std::vector<at::Tensor> images;
  for (int64_t begin = 0; begin < N; begin += chunk) {
    const at::Tensor part = latents.narrow(0, begin, std::min(chunk, N - begin));  // [B, C, h, w]
    if (plan.tile == 0) {
      images.push_back(decode(part).to(at::kCPU, at::kFloat));  // [B, out, h s, w s]
      continue;
    }
    at::Tensor sum, weight;  // [B, out, h s, w s] and [h s, w s], on the decoder's device
    const std::vector<int64_t> rows = tile_origins(h, plan.tile, plan.overlap), cols = tile_origins(w, plan.tile, plan.overlap);
    const int64_t th = std::min<int64_t>(plan.tile, h), tw = std::min<int64_t>(plan.tile, w), ramp = plan.overlap * s;
    for (int64_t y : rows)
      for (int64_t x : cols) {
        const at::Tensor pixels = decode(part.narrow(2, y, th).narrow(3, x, tw)).to(at::kFloat);  // [B, out, th s, tw s]
        if (!sum.defined()) {
          sum = at::zeros({part.size(0), pixels.size(1), h * s, w * s}, pixels.options());
          weight = at::zeros({h * s, w * s}, pixels.options());
        }
        const at::Tensor wy = ramp_weights(th * s, ramp, y > 0, y + th < h).to(pixels.device());  // [th s]
        const at::Tensor wx = ramp_weights(tw * s, ramp, x > 0, x + tw < w).to(pixels.device());  // [tw s]
        const at::Tensor tile_weight = wy.unsqueeze(1) * wx.unsqueeze(0);                         // [th s, tw s]
        sum.narrow(2, y * s, th * s).narrow(3, x * s, tw * s).add_(pixels * tile_weight);
        weight.narrow(0, y * s, th * s).narrow(1, x * s, tw * s).add_(tile_weight);
      }
    images.push_back((sum / weight).to(at::kCPU));  // [B, out, h s, w s]
  }
  return at::cat(images);  // [N, out, h s, w s]
}

at::Tensor decode_latents(AutoencoderKL& vae, const at::Tensor& latents, const DecodePlan& plan) {
  const at::Tensor& probe = vae->decoder->conv_in->weight;
  return decode_in_tiles([&](const at::Tensor& z) { return vae->decode_latents(z.to(probe.device(), probe.scalar_type())); },
                         vae->config().upscale(), latents, plan);
}

}  // namespace ditgen::vae
