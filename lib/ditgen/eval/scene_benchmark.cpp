#include "ditgen/eval/scene_benchmark.h"

#include <chrono>

#include "ditgen/core/error.h"
#include "ditgen/data/scene_captions.h"
#include "ditgen/data/scenes.h"
#include "ditgen/eval/scene_eval.h"

namespace ditgen::eval {

namespace {

void check_text_model(const ModelInfo& info) {
  const DiTConfig& c = info.config;
  if (!c.text.enabled() || c.in_channels != 3 || c.input_height != data::kSceneSize ||
      c.input_width != data::kSceneSize || c.image_space != ImageSpace::Pixel)
    throw Error(ErrorKind::Usage, "the scene benchmark needs a text model of 64x64 RGB pixels; '" + info.name +
                                      "' makes " + std::to_string(c.in_channels) + "-channel " +
                                      std::to_string(c.input_height) + "x" + std::to_string(c.input_width) + " " +
                                      image_space_name(c.image_space) + " outputs");
}

}  // namespace

EvalReport evaluate_scenes(Generator& generator, const EvalOptions& o, const EvalProgress& progress) {
  check_text_model(generator.info());
  const std::vector<std::string> prompts = data::benchmark_prompts();
  const std::vector<data::Scene>& layouts = data::benchmark_layouts();
  const int64_t n = o.num_samples, P = static_cast<int64_t>(prompts.size());
  const Conditioner condition = prompt_conditioner(prompts);
  const GenerationRequest request = evaluation_request(generator, o, condition);  // usage errors before anything slow
  // Everything that reads files comes before the (long) generation, so a bad path fails at once.
  FmnistClassifier classifier = load_classifier(o.classifier, generator.device());
  const std::filesystem::path dir = o.data_dir.empty() ? data::default_fashion_mnist_dir() : o.data_dir;
  const data::FashionMnist test_set(dir, data::Split::Test), train_set(dir, data::Split::Train);
  const GeneratedImages generated = generate_for_evaluation(generator, o, request, condition, progress);
  std::vector<data::Scene> asked;
  for (int64_t i = 0; i < n; ++i) asked.push_back(layouts[static_cast<size_t>(i % P)]);

  const auto features_start = std::chrono::steady_clock::now();
  if (progress) progress(EvalStage::Features, Progress{0, 0, 0, 0, 0});
  const SceneScores scores = score_scenes(classifier, generated.images, asked);
  const SceneScores ceiling = real_scene_ceiling(classifier, test_set, std::min(n, P), o.seed);
  const CropFid fid = crop_fid(classifier, generated.images, asked, test_set, train_set, o.seed);
  if (progress)
    progress(EvalStage::Features,
             Progress{1, 1, 0, 0, std::chrono::duration<double>(std::chrono::steady_clock::now() - features_start).count()});

  EvalReport report;
  report.fid = fid.fid;
  report.real_vs_real_fid = fid.real_floor;
  report.class_accuracy = scores.item_class.accuracy();
  report.scenes = {{"generated", scores.to_json()},
                   {"ceiling", ceiling.to_json()},
                   {"ratio", scores.ratio_json(ceiling)},
                   {"held_out_over_seen", scores.held_out_over_seen()},
                   {"prompts", std::min(n, P)},
                   {"images_per_prompt", static_cast<double>(n) / static_cast<double>(std::min(n, P))}};
  describe_run(report, generator, generated, o);
  return report;
}

}  // namespace ditgen::eval
