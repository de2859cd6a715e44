// A video model's evaluation (docs/VIDEO.md, docs/SCENES.md): clips for the fixed benchmark of moving-scene
// prompts, scored item by item (class, colour, direction) against the layouts the prompts name, beside the
// same scorer's ceiling on real clips and the Fréchet distance over clip features with its floor.
#pragma once

#include "ditgen/eval/evaluate.h"

namespace ditgen::eval {

// Generates options.num_samples clips of the model's own frame count, clip i for benchmark prompt i mod 512
// (so 1,024 samples give 2 clips a prompt), and reports evaluate_moving_scenes' figures in EvalReport::scenes.
// fid / real_vs_real_fid are the clips' Fréchet distance and its real-vs-real floor; class_accuracy is the
// items' frame accuracy (class right in each frame the item is found in). Error(Usage) for a model that is not
// a 64x64 RGB pixel text-to-video model, clips outside 2..19 frames, or bad options.
EvalReport evaluate_moving_benchmark(Generator& generator, const EvalOptions& options,
                                     const EvalProgress& progress = {});

}  // namespace ditgen::eval
