// Decoding latents to images within a memory budget: images a chunk at a time (video frames are images
// here), each whole or in overlapping latent tiles blended linearly in pixel space (docs/VAE.md, "Tiling").
// Tiles see their own GroupNorm statistics and attention context, so tiled decoding approximates whole
// decoding; the blend hides the seams.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "ditgen/vae/autoencoder_kl.h"

namespace ditgen::vae {

// How decoding runs.
struct DecodePlan {
  int tile = 0;        // latent tile side; 0 = whole images
  int overlap = 0;     // latents neighbouring tiles share (tile / 4)
  int64_t chunk = 1;   // images decoded together
};

// What --vae-tile asks for: chosen by size and memory (auto), whole images (off), or tiles of N latents.
struct TileChoice {
  bool automatic = true;
  int tile = 0;  // 0 with automatic false: whole images
};
// "auto", "off" or N (8..1024). Error(Usage) otherwise.
TileChoice parse_tile_choice(const std::string& text);
std::string to_string(const TileChoice& choice);

// Smallest tile side auto picks, and the tile sides it tries (largest first).
inline constexpr int kMinAutoTile = 16;

// An estimate of the memory one image's decoding holds at its peak, activations only (weights apart): the
// widest level's tensors (about five of them alive in a resnet or upsampling step) and the mid-block
// attention's score matrix.
uint64_t decode_peak_bytes(const VaeConfig& config, int64_t height, int64_t width, at::ScalarType dtype);

// The plan for decoding `images` latents of height x width within `available_bytes` (half of it is used):
// auto decodes whole images when one fits, else the largest tile (64, 48, 32, 24 or 16) that fits; a fixed
// tile at least the latent's size decodes whole. The chunk is the images that fit together (at least 1).
DecodePlan plan_decode(const VaeConfig& config, int64_t images, int64_t height, int64_t width, const TileChoice& choice,
                       at::ScalarType dtype, uint64_t available_bytes);

// Where tiles start along one side of `size` latents: evenly spread so that neighbours share at least
// `overlap` (one tile at 0 when the side fits in one).
std::vector<int64_t> tile_origins(int64_t size, int tile, int overlap);

// Decodes latents [N, C, h, w] by `plan` with `decode` (latent tile [B, C, th, tw] on its device -> pixels
// [B, out, th s, tw s] in [-1, 1]), s = `upscale`. Returns float32 images [N, out, h s, w s] on the CPU.
at::Tensor decode_in_tiles(const std::function<at::Tensor(const at::Tensor&)>& decode, int upscale,
                           const at::Tensor& latents, const DecodePlan& plan);

// A latent DiT's latents [N, C, h, w] (any device) as images [N, out, h s, w s] in [-1, 1], float32 on the
// CPU: AutoencoderKL::decode_latents on the VAE's device and dtype, by `plan`.
at::Tensor decode_latents(AutoencoderKL& vae, const at::Tensor& latents, const DecodePlan& plan);

}  // namespace ditgen::vae
