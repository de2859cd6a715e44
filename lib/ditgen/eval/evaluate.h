// Sample-quality evaluation of a Fashion-MNIST model: FID and class accuracy on the features of our own
// classifier, with the real-vs-real FID as the floor a perfect model would reach at this sample count.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ditgen/pipeline/generator.h"

namespace ditgen::eval {

struct EvalOptions {
  int64_t num_samples = 10000;
  int steps = 50;
  std::string sampler = "";  // "" = the model's default
  std::optional<double> cfg_scale;  // nullopt = the model's default
  schedule::ComputeSchedule schedule;  // compute schedule (flexible models); dense by default
  int batch_size = 250;
  bool auto_batch = false;               // out of GPU memory: halve the batch and go on
  uint64_t seed = 0;                     // image i uses seed + i; also picks the real-vs-real train subset
  std::filesystem::path data_dir;        // Fashion-MNIST; empty = the default folder
  std::filesystem::path classifier;      // a file written by train_classifier
  // A text model fine-tuned on a subject (docs/INTLORA.md): the subject's test-split index, or -1 for the scene
  // benchmark, and the word it is bound to.
  int64_t subject_index = -1;
  std::string subject_word = "zq";
};

struct EvalReport {
  double fid = 0;                // generated vs the test split (text models: their item crops)
  double class_accuracy = 0;     // share of generated images (text models: items) the classifier assigns their class
  double real_vs_real_fid = 0;   // train images (text models: real scenes' crops) vs the test split: the floor
  nlohmann::json scenes;         // text models: the scene benchmark's figures (scene_benchmark.h; video models:
                                 // moving_benchmark.h); null otherwise
  double gflops_per_image = 0;
  double wall_seconds = 0;       // generation only
  double images_per_second = 0;
  int64_t num_samples = 0;
  int steps = 0;
  double cfg_scale = 0;
  std::string sampler;
  std::string schedule;          // its canonical text
  uint64_t seed = 0;             // image i used seed + i

  // Every field under its own name.
  nlohmann::json to_json() const;
};

// What an evaluation is doing, as its progress tells: generating the images, then running them and as many
// real ones of each split through the classifier.
enum class EvalStage { Generating, Features };
const char* eval_stage_name(EvalStage stage);  // "generating", "features"

// Where a stage stands: images done of the stage's total (sampling steps of the batch in flight while
// generating, none for features) and seconds since the stage began.
using EvalProgress = std::function<void(EvalStage stage, const Progress& progress)>;

// A class model: generates num_samples images (labels cycling through the classes, seeds seed + i) in
// batches, and scores them against Fashion-MNIST. A text model: evaluate_scenes (scene_benchmark.h). `progress` is called as each stage begins (nothing done yet), after each
// sampling step, and after each classifier batch.
// Throws Error(Usage) for bad options or a model that is not 1x32x32 pixels with 10 classes, Error(Model)
// for a bad classifier file, Error(Input) for a missing dataset.
EvalReport evaluate(Generator& generator, const EvalOptions& options, const EvalProgress& progress = {});

// Fills a request's labels or prompts for images [begin, begin + count) of an evaluation.
using Conditioner = std::function<void(GenerationRequest& request, int64_t begin, int64_t count)>;
// A benchmark's: sample i asks for prompts[i mod prompts.size()] (the list is held by reference).
Conditioner prompt_conditioner(const std::vector<std::string>& prompts);

struct GeneratedImages {
  at::Tensor images;          // [N, C, H, W] float32 CPU, in the model's output space; clips [N, F, C, H, W]
  double seconds = 0;         // generation only
  GenerationRequest request;  // the settings used (its labels or prompts: the last batch's)
};

// The request an evaluation runs (sampler, guidance and schedule from the options, else the model's defaults;
// image 0's condition from `condition`), checked against the model. Error(Usage) for bad options.
GenerationRequest evaluation_request(const Generator& generator, const EvalOptions& options, const Conditioner& condition);
// The generation half of an evaluation: options.num_samples images of `request` in batches (image i: seed
// options.seed + i, its condition from `condition`); `progress` sees the Generating stage.
GeneratedImages generate_for_evaluation(Generator& generator, const EvalOptions& options,
                                        const GenerationRequest& request, const Conditioner& condition,
                                        const EvalProgress& progress);
// The run's own fields of a report (GFLOPs, time, rate, samples, sampler settings, seed).
void describe_run(EvalReport& report, const Generator& generator, const GeneratedImages& generated,
                  const EvalOptions& options);

}  // namespace ditgen::eval
