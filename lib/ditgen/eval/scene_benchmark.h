// A text model's evaluation (docs/TEXT.md, docs/SCENES.md): images for the fixed benchmark of scene prompts,
// scored item by item against the layouts the prompts name, beside the same scorer's ceiling on real scenes
// and the crop FID with its floor.
#pragma once

#include <chrono>

#include "ditgen/data/fashion_mnist.h"
#include "ditgen/eval/classifier.h"
#include "ditgen/eval/evaluate.h"

namespace ditgen::eval {

// Error(Usage) unless the model is a text model of 64x64 RGB pixels, what every scene benchmark scores.
void check_text_model(const ModelInfo& info);

// What the still and the moving scene benchmarks share: options.num_samples samples, sample i for prompts[i mod
// P], and what they are scored against. The request is checked and the classifier and Fashion-MNIST splits
// are read before the (long) generation, so bad options or a bad path fail at once.
struct PromptBenchmarkRun {
  FmnistClassifier classifier;
  data::FashionMnist test_set, train_set;
  GeneratedImages generated;
};
PromptBenchmarkRun run_prompt_benchmark(Generator& generator, const EvalOptions& options,
                                        const std::vector<std::string>& prompts, const EvalProgress& progress);

// The first n items of `items` repeated: what samples 0..n-1 of a prompt benchmark asked for.
template <class T>
std::vector<T> cycled(const std::vector<T>& items, int64_t n) {
  std::vector<T> out;
  for (int64_t i = 0; i < n; ++i) out.push_back(items[static_cast<size_t>(i % static_cast<int64_t>(items.size()))]);
  return out;
}

// Runs `score` as the Features stage and returns what it returns: `progress` hears its start and its end.
template <class Score>
auto features_stage(const EvalProgress& progress, Score&& score) {
  const auto start = std::chrono::steady_clock::now();
  if (progress) progress(EvalStage::Features, Progress{0, 0, 0, 0, 0});
  auto scores = score();
  if (progress)
    progress(EvalStage::Features,
             Progress{1, 1, 0, 0, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()});
  return scores;
}

// Generates options.num_samples images, image i for benchmark prompt i mod 2000 (so 8,000 samples give 4
// images a prompt, balanced by item count), and reports in EvalReport::scenes: "generated" and "ceiling"
// (SceneScores::to_json, the ceiling on the real scenes of the same layouts from the test split), "ratio"
// (generated over ceiling: items, scenes, and per item count), "held_out_over_seen" (item accuracy on
// held-out pairs over seen ones) and "prompts"/"images_per_prompt". fid / real_vs_real_fid are the crop FID
// and its floor; class_accuracy is the items' class accuracy. Error(Usage) for a model that is not a 64x64
// RGB pixel text model, or bad options.
EvalReport evaluate_scenes(Generator& generator, const EvalOptions& options, const EvalProgress& progress = {});

}  // namespace ditgen::eval
