#include "ditgen/eval/moving_benchmark.h"

#include <chrono>

#include "ditgen/core/error.h"
#include "ditgen/data/moving_captions.h"
#include "ditgen/data/moving_grammar.h"
#include "ditgen/data/scenes.h"
#include "ditgen/eval/moving_scene_eval.h"

namespace ditgen::eval {

EvalReport evaluate_moving_benchmark(Generator& generator, const EvalOptions& o, const EvalProgress& progress) {
  const ModelInfo& info = generator.info();
  const DiTConfig& c = info.config;
  if (!c.video() || !c.text.enabled() || c.in_channels != 3 || c.input_height != data::kSceneSize ||
      c.input_width != data::kSceneSize || c.image_space != ImageSpace::Pixel)
    throw Error(ErrorKind::Usage, "the moving-scene benchmark needs a text-to-video model of 64x64 RGB pixels; '" +
                                      info.name + "' is not one");
  data::check_frames(c.input_frames);  // the evaluator reads clips of 2..19 frames
  if (o.num_samples < 2) throw Error(ErrorKind::Usage, "the moving-scene benchmark needs at least 2 clips");
  const std::vector<std::string> prompts = data::moving_benchmark_prompts();
  const std::vector<data::MovingScene>& layouts = data::moving_benchmark_layouts();
  const int64_t n = o.num_samples, P = static_cast<int64_t>(prompts.size());
  const Conditioner condition = prompt_conditioner(prompts);
  const GenerationRequest request = evaluation_request(generator, o, condition);  // usage errors before anything slow
  FmnistClassifier classifier = load_classifier(o.classifier, generator.device());
  const std::filesystem::path dir = o.data_dir.empty() ? data::default_fashion_mnist_dir() : o.data_dir;
  const data::FashionMnist test_set(dir, data::Split::Test), train_set(dir, data::Split::Train);
  const GeneratedImages generated = generate_for_evaluation(generator, o, request, condition, progress);
  std::vector<data::MovingScene> asked;
  for (int64_t i = 0; i < n; ++i) asked.push_back(layouts[static_cast<size_t>(i % P)]);

  const auto features_start = std::chrono::steady_clock::now();
  if (progress) progress(EvalStage::Features, Progress{0, 0, 0, 0, 0});
  EvalReport report;
  report.scenes = evaluate_moving_scenes(classifier, generated.images, asked, test_set, train_set, o.seed);
  report.scenes["prompts"] = std::min(n, P);
  report.scenes["clips_per_prompt"] = static_cast<double>(n) / static_cast<double>(std::min(n, P));
  if (progress)
    progress(EvalStage::Features,
             Progress{1, 1, 0, 0, std::chrono::duration<double>(std::chrono::steady_clock::now() - features_start).count()});
  report.fid = report.scenes["frechet"]["distance"].get<double>();
  report.real_vs_real_fid = report.scenes["frechet"]["floor"].get<double>();
  report.class_accuracy = report.scenes["frame_accuracy"].get<double>();
  describe_run(report, generator, generated, o);
  return report;
}

}  // namespace ditgen::eval
