#include "ditgen/eval/evaluate.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>

#include "ditgen/core/error.h"
#include "ditgen/eval/classifier.h"
#include "ditgen/eval/fid.h"
#include "ditgen/eval/moving_benchmark.h"
#include "ditgen/eval/subject_benchmark.h"
#include "ditgen/eval/scene_benchmark.h"
#include "ditgen/data/fashion_mnist.h"

namespace ditgen::eval {

namespace {

struct Classified {
  at::Tensor features;  // [N, 256] float32 CPU
  at::Tensor logits;    // [N, 10] float32 CPU
};

// Runs the classifier over images [N, 1, 32, 32] (CPU) in batches on `device`; `on_batch(count)` after each.
Classified classify_images(FmnistClassifier& model, const at::Tensor& images, at::Device device, int64_t batch,
                           const std::function<void(int64_t count)>& on_batch) {
  c10::InferenceMode inference;
  std::vector<at::Tensor> features, logits;
  for (int64_t begin = 0; begin < images.size(0); begin += batch) {
    const int64_t count = std::min(batch, images.size(0) - begin);
    // Samplers may overshoot the data range; the classifier only knows [-1, 1].
    at::Tensor x = images.narrow(0, begin, count).to(device, at::kFloat).clamp(-1, 1);  // [b, 1, 32, 32]
    at::Tensor f = model->features(x);                                                   // [b, 256]
    logits.push_back(model->classify(f).cpu());                                          // [b, 10]
    features.push_back(f.cpu());                                                         // [b, 256]
    on_batch(count);
  }
  return {at::cat(features), at::cat(logits)};
}

void check_model(const ModelInfo& info) {
  const DiTConfig& c = info.config;
  if (c.in_channels != 1 || c.input_height != 32 || c.input_width != 32 || c.image_space != ImageSpace::Pixel ||
      c.num_classes != FmnistClassifierImpl::kClasses)
    throw Error(ErrorKind::Usage, "evaluation needs a Fashion-MNIST model (1-channel 32x32 pixels, 10 classes); '" +
                                      info.name + "' makes " + std::to_string(c.in_channels) + "-channel " +
                                      std::to_string(c.input_height) + "x" + std::to_string(c.input_width) + " " +
                                      image_space_name(c.image_space) + " outputs of " +
                                      std::to_string(c.num_classes) + " classes");
}

// Seconds since `start`.
double since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

const char* eval_stage_name(EvalStage stage) {
  return stage == EvalStage::Generating ? "generating" : "features";
}

nlohmann::json EvalReport::to_json() const {
  nlohmann::json j = {{"fid", fid},
          {"class_accuracy", class_accuracy},
          {"real_vs_real_fid", real_vs_real_fid},
          {"gflops_per_image", gflops_per_image},
          {"wall_seconds", wall_seconds},
          {"images_per_second", images_per_second},
          {"num_samples", num_samples},
          {"steps", steps},
          {"cfg_scale", cfg_scale},
          {"schedule", schedule},
          {"seed", seed},
          {"sampler", sampler}};
  if (!scenes.is_null()) j["scenes"] = scenes;
  return j;
}

GenerationRequest evaluation_request(const Generator& generator, const EvalOptions& o, const Conditioner& condition) {
  if (o.num_samples < 2) throw Error(ErrorKind::Usage, "evaluation needs at least 2 samples");
  if (o.batch_size < 1) throw Error(ErrorKind::Usage, "evaluation batch size must be >= 1");
  if (o.classifier.empty()) throw Error(ErrorKind::Usage, "evaluation needs a classifier file");
  const SamplerDefaults& defaults = generator.info().sampler_defaults;
  GenerationRequest request;
  request.sampler = {o.sampler.empty() ? defaults.sampler : o.sampler, o.steps, 0.0};
  request.guidance = {o.cfg_scale.value_or(defaults.cfg_scale), defaults.cfg_channels};
  request.schedule = o.schedule;
  request.auto_batch = o.auto_batch;
  condition(request, 0, 1);
  request.seeds = {o.seed};
  generator.validate(request);
  return request;
}

Conditioner prompt_conditioner(const std::vector<std::string>& prompts) {
  return [&prompts](GenerationRequest& r, int64_t begin, int64_t count) {
    const auto P = static_cast<int64_t>(prompts.size());
    r.prompts.clear();
    for (int64_t i = begin; i < begin + count; ++i) r.prompts.push_back(prompts[static_cast<size_t>(i % P)]);
  };
}

GeneratedImages generate_for_evaluation(Generator& generator, const EvalOptions& o, const GenerationRequest& settings,
                                        const Conditioner& condition, const EvalProgress& progress) {
  GeneratedImages out;
  out.request = settings;
  GenerationRequest& request = out.request;
  const int64_t n = o.num_samples;
  std::vector<at::Tensor> images;
  const auto start = std::chrono::steady_clock::now();
  auto report = [&](int64_t done, int step, int steps) {
    if (progress) progress(EvalStage::Generating, Progress{static_cast<int>(done), static_cast<int>(n), step, steps, since(start)});
  };
  report(0, 0, request.sampler.steps);
  for (int64_t begin = 0; begin < n; begin += o.batch_size) {
    const int64_t count = std::min<int64_t>(o.batch_size, n - begin);
    condition(request, begin, count);
    request.seeds.resize(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) request.seeds[i] = o.seed + static_cast<uint64_t>(begin + i);
    const auto batch_start = std::chrono::steady_clock::now();
    GenerationResult result = generator.generate(request, [&](const Progress& p) {
      report(begin + p.images_done, p.step, p.steps);
    });  // frames on the CPU: the device is done
    out.seconds += since(batch_start);
    images.push_back(result.frames.size(1) > 1 ? result.frames : result.frames.select(1, 0));  // [b, (F,) C, H, W]
  }
  out.images = at::cat(images);  // [N, C, H, W], or clips [N, F, C, H, W]
  return out;
}

void describe_run(EvalReport& report, const Generator& generator, const GeneratedImages& generated,
                  const EvalOptions& o) {
  const GenerationRequest& request = generated.request;
  report.gflops_per_image = generator.gflops_per_image(request);
  report.wall_seconds = generated.seconds;
  report.num_samples = generated.images.size(0);
  report.images_per_second = generated.seconds > 0 ? static_cast<double>(report.num_samples) / generated.seconds : 0;
  report.steps = request.sampler.steps;
  report.cfg_scale = request.guidance.scale;
  report.sampler = request.sampler.name;
  report.schedule = request.schedule.text();
  report.seed = o.seed;
}

EvalReport evaluate(Generator& generator, const EvalOptions& o, const EvalProgress& progress) {
  const ModelInfo& info = generator.info();
  if (o.subject_index >= 0 && (info.config.video() || !info.config.text.enabled()))
    throw Error(ErrorKind::Usage, "a subject evaluation needs a text-to-image model fine-tuned on the subject");
  if (info.config.video()) return evaluate_moving_benchmark(generator, o, progress);
  if (info.config.text.enabled())
    return o.subject_index >= 0 ? evaluate_subject(generator, o, progress) : evaluate_scenes(generator, o, progress);
  check_model(info);
  const int64_t n = o.num_samples, classes = info.config.num_classes;
  const at::Tensor labels = at::arange(n, at::kLong).remainder(classes);  // [N]: balanced over the classes
  const Conditioner condition = [&](GenerationRequest& r, int64_t begin, int64_t count) {
    r.labels.assign(labels.data_ptr<int64_t>() + begin, labels.data_ptr<int64_t>() + begin + count);
  };
  const GenerationRequest request = evaluation_request(generator, o, condition);  // usage errors before anything slow
  // Everything that reads files comes before the (long) generation, so a bad path fails at once.
  FmnistClassifier classifier = load_classifier(o.classifier, generator.device());
  const std::filesystem::path dir = o.data_dir.empty() ? data::default_fashion_mnist_dir() : o.data_dir;
  const data::FashionMnist test_set(dir, data::Split::Test), train_set(dir, data::Split::Train);
  const GeneratedImages generated_images = generate_for_evaluation(generator, o, request, condition, progress);
  auto report_progress = [&](EvalStage stage, int64_t done, int64_t total, int step, int steps,
                             std::chrono::steady_clock::time_point stage_start) {
    if (progress)
      progress(stage, Progress{static_cast<int>(done), static_cast<int>(total), step, steps, since(stage_start)});
  };

  // The same number of real images on both sides, so the real-vs-real floor has the same small-sample bias.
  std::vector<int64_t> test_ids(static_cast<size_t>(std::min(n, test_set.size())));
  for (size_t i = 0; i < test_ids.size(); ++i) test_ids[i] = static_cast<int64_t>(i);  // the first M
  at::Generator subset_gen = at::detail::createCPUGenerator(o.seed);
  const at::Tensor order = at::randperm(train_set.size(), subset_gen, at::kLong);  // [60000]
  const std::vector<int64_t> train_ids(order.data_ptr<int64_t>(),
                                       order.data_ptr<int64_t>() + std::min(n, train_set.size()));
  const int64_t to_classify = n + static_cast<int64_t>(test_ids.size() + train_ids.size());
  const auto features_start = std::chrono::steady_clock::now();
  int64_t classified = 0;
  auto classify = [&](const at::Tensor& images) {
    return classify_images(classifier, images, generator.device(), o.batch_size, [&](int64_t count) {
      classified += count;
      report_progress(EvalStage::Features, classified, to_classify, 0, 0, features_start);
    });
  };
  report_progress(EvalStage::Features, 0, to_classify, 0, 0, features_start);
  const Classified generated = classify(generated_images.images);
  const Classified real_test = classify(test_set.get(test_ids).images);
  const Classified real_train = classify(train_set.get(train_ids).images);

  const Gaussian test_stats = feature_statistics(real_test.features);
  EvalReport report;
  report.fid = frechet_distance(feature_statistics(generated.features), test_stats);
  report.real_vs_real_fid = frechet_distance(feature_statistics(real_train.features), test_stats);
  report.class_accuracy = generated.logits.argmax(1).eq(labels).to(at::kDouble).mean().item<double>();
  describe_run(report, generator, generated_images, o);
  return report;
}

}  // namespace ditgen::eval
