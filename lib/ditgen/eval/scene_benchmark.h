// A text model's evaluation (docs/TEXT.md, docs/SCENES.md): images for the fixed benchmark of scene prompts,
// scored item by item against the layouts the prompts name, beside the same scorer's ceiling on real scenes
// and the crop FID with its floor.
#pragma once

#include "ditgen/eval/evaluate.h"

namespace ditgen::eval {

// Generates options.num_samples images, image i for benchmark prompt i mod 2000 (so 8,000 samples give 4
// images a prompt, balanced by item count), and reports in EvalReport::scenes: "generated" and "ceiling"
// (SceneScores::to_json, the ceiling on the real scenes of the same layouts from the test split), "ratio"
// (generated over ceiling: items, scenes, and per item count), "held_out_over_seen" (item accuracy on
// held-out pairs over seen ones) and "prompts"/"images_per_prompt". fid / real_vs_real_fid are the crop FID
// and its floor; class_accuracy is the items' class accuracy. Error(Usage) for a model that is not a 64x64
// RGB pixel text model, or bad options.
EvalReport evaluate_scenes(Generator& generator, const EvalOptions& options, const EvalProgress& progress = {});

}  // namespace ditgen::eval
