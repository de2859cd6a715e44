// What a model costs: multiply-accumulate GFLOPs of a forward pass and the parameter count, from its config
// alone (no weights needed), for `info`, benchmarks' MFU and the schedules' cost.
#pragma once

#include <cstdint>

#include "ditgen/models/config.h"

namespace ditgen {

// Multiply-accumulate GFLOPs of one forward pass of one image at height x width (the DiT papers'
// convention: DiT-XL/2 at 32x32 latents = 118.6). Counts every linear layer and the two attention matmuls;
// `patch` and `grid` as in forward(); a text model's encoder and text attention count at its max_tokens; unmerged LoRA adapters of a lora-mode flexible model count
// r * (in + out) a token. A Poolingformer's value and output projections act on one (mean) token.
// A clip of `frames` frames counts every frame's tokens in one sequence (F x h x w), a PT-DiT's windows
// spanning config.window_frames(frames) frames.
double dit_gflops(const DiTConfig& config, int height, int width, int patch = 0, bool lora_merged = false,
                  int grid = 0, int frames = 1);

// MAC GFLOPs of one DiffuSSM block's bidirectional SSM over `tokens` tokens of one image: per channel and
// direction a forward and an inverse real FFT of 2L points (~5/2 n log2 n real FLOPs each, half as MACs; the
// kernel's own transform is cached) and the pointwise products. 0 for other models.
double ssm_mixing_gflops(const DiTConfig& config, double tokens);

// Number of parameters of a model with this config.
int64_t dit_parameter_count(const DiTConfig& config);

}  // namespace ditgen
