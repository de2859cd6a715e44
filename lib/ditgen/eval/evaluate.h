// Sample-quality evaluation of a Fashion-MNIST model: FID and class accuracy on the features of our own
// classifier, with the real-vs-real FID as the floor a perfect model would reach at this sample count.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

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
};

struct EvalReport {
  double fid = 0;                // generated vs the test split
  double class_accuracy = 0;     // share of generated images the classifier assigns their requested class
  double real_vs_real_fid = 0;   // train subset vs the same test features: the floor at this sample count
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

// Generates num_samples images (labels cycling through the classes, seeds seed + i) in batches, and scores
// them against Fashion-MNIST. `progress` is called as each stage begins (nothing done yet), after each
// sampling step, and after each classifier batch.
// Throws Error(Usage) for bad options or a model that is not 1x32x32 pixels with 10 classes, Error(Model)
// for a bad classifier file, Error(Input) for a missing dataset.
EvalReport evaluate(Generator& generator, const EvalOptions& options, const EvalProgress& progress = {});

}  // namespace ditgen::eval
