#include "ditgen/eval/moving_benchmark.h"

#include "ditgen/core/error.h"
#include "ditgen/data/moving_captions.h"
#include "ditgen/data/moving_grammar.h"
#include "ditgen/data/scenes.h"
#include "ditgen/eval/moving_scene_eval.h"
#include "ditgen/eval/scene_benchmark.h"

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
  const int64_t n = o.num_samples, P = static_cast<int64_t>(prompts.size());
  PromptBenchmarkRun run = run_prompt_benchmark(generator, o, prompts, progress);
  const std::vector<data::MovingScene> asked = cycled(data::moving_benchmark_layouts(), n);
  EvalReport report;
  report.scenes = features_stage(progress, [&] {
    return evaluate_moving_scenes(run.classifier, run.generated.images, asked, run.test_set, run.train_set, o.seed);
  });
  report.scenes["prompts"] = std::min(n, P);
  report.scenes["clips_per_prompt"] = static_cast<double>(n) / static_cast<double>(std::min(n, P));
  report.fid = report.scenes["frechet"]["distance"].get<double>();
  report.real_vs_real_fid = report.scenes["frechet"]["floor"].get<double>();
  report.class_accuracy = report.scenes["frame_accuracy"].get<double>();
  describe_run(report, generator, run.generated, o);
  return report;
}

}  // namespace ditgen::eval
