// Noise for clips whose frames share part of it (PYoCo's mixed noise; docs/VIDEO.md "Noise shared across
// frames"). Each frame's noise is sqrt(c) * shared + sqrt(1 - c) * own: every frame stays N(0, I) and two
// frames correlate by c. With independent noise a clip's content, which its F frames repeat, keeps F times a
// frame's SNR under the noise, so even the last training timestep shows the clip and sampling from pure
// noise starts from something the model never saw; shared noise hides that content as it hides a frame's.
#pragma once

#include <ATen/ATen.h>
#include <ATen/core/Generator.h>

namespace ditgen::sampling {

// Gaussian noise of `shape` [..., F, H, W] (float32, CPU; frames on dim -3) from g, the frames correlated by
// `correlation` in [0, 1). At 0 it is at::randn(shape, g) exactly, so images and independent-noise clips draw
// what they always drew.
at::Tensor frame_noise(at::IntArrayRef shape, at::Generator& g, double correlation);

}  // namespace ditgen::sampling
