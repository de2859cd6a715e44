// Clips as tokens (docs/VIDEO.md): a clip [B, C, F, H, W] is patched frame by frame with the image
// tokenizer, its tokens in (frame, row, column) order, and each frame's tokens get a temporal position on
// top of the image positions. Channels stay in dimension 1 so that every shape-agnostic part of ditgen
// (samplers, guidance, losses, learned-sigma splits) treats a clip like an image.
#pragma once

#include <ATen/ATen.h>

namespace ditgen::nn {

// A clip's frames as a batch of images. [B, C, F, H, W] -> [B * F, C, H, W]
at::Tensor frames_as_batch(const at::Tensor& clip);
// The inverse, for `frames` frames a clip. [B * F, C, H, W] -> [B, C, F, H, W]
at::Tensor batch_as_frames(const at::Tensor& images, int64_t frames);

// Fixed sin-cos positions of frames 0..frames-1 (the 1D form of the image positions, max period 10000),
// minus frame 0's: frame 0 adds nothing, so a clip's first frame and an image see the same positions and a
// text-to-image model's weights start a video model that reproduces it frame by frame. [F, D] float32
at::Tensor temporal_pos_embed(int dim, int64_t frames);

}  // namespace ditgen::nn
