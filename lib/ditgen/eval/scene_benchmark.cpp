#include "ditgen/eval/scene_benchmark.h"

#include <tuple>

#include "ditgen/core/error.h"
#include "ditgen/data/scene_captions.h"
#include "ditgen/data/scenes.h"
#include "ditgen/eval/scene_eval.h"

namespace ditgen::eval {

void check_text_model(const ModelInfo& info) {
  const DiTConfig& c = info.config;
  if (!c.text.enabled() || c.in_channels != 3 || c.input_height != data::kSceneSize ||
      c.input_width != data::kSceneSize || c.image_space != ImageSpace::Pixel)
    throw Error(ErrorKind::Usage, "the scene benchmark needs a text model of 64x64 RGB pixels; '" + info.name +
                                      "' makes " + std::to_string(c.in_channels) + "-channel " +
                                      std::to_string(c.input_height) + "x" + std::to_string(c.input_width) + " " +
                                      image_space_name(c.image_space) + " outputs");
}

PromptBenchmarkRun run_prompt_benchmark(Generator& generator, const EvalOptions& o,
                                        const std::vector<std::string>& prompts, const EvalProgress& progress) {
  const Conditioner condition = prompt_conditioner(prompts);
  const GenerationRequest request = evaluation_request(generator, o, condition);
  const std::filesystem::path dir = o.data_dir.empty() ? data::default_fashion_mnist_dir() : o.data_dir;
  // A braced initializer runs in order: everything that reads files before the generation.
  return {load_classifier(o.classifier, generator.device()), data::FashionMnist(dir, data::Split::Test),
          data::FashionMnist(dir, data::Split::Train),
          generate_for_evaluation(generator, o, request, condition, progress)};
}

EvalReport evaluate_scenes(Generator& generator, const EvalOptions& o, const EvalProgress& progress) {
  check_text_model(generator.info());
  const std::vector<std::string> prompts = data::benchmark_prompts();
  const int64_t n = o.num_samples, P = static_cast<int64_t>(prompts.size());
  PromptBenchmarkRun run = run_prompt_benchmark(generator, o, prompts, progress);
  const std::vector<data::Scene> asked = cycled(data::benchmark_layouts(), n);
  const auto [scores, ceiling, fid] = features_stage(progress, [&] {
    return std::tuple{score_scenes(run.classifier, run.generated.images, asked),
                      real_scene_ceiling(run.classifier, run.test_set, std::min(n, P), o.seed),
                      crop_fid(run.classifier, run.generated.images, asked, run.test_set, run.train_set, o.seed)};
  });

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
  describe_run(report, generator, run.generated, o);
  return report;
}

}  // namespace ditgen::eval
