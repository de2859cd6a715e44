// `ditgen eval`: what a model and a sampling setting are worth: FID-FMNIST, class accuracy, GFLOPs, time.
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <string>

#include "commands.h"
#include "ditgen/pipeline/outputs.h"
#include "ditgen/eval/evaluate.h"
#include "ditgen/io/atomic_file.h"
#include "ditgen/pipeline/generator.h"
#include "ditgen/data/fashion_mnist.h"
#include "progress.h"
#include "shipped.h"

namespace ditgen::cli {

namespace {

struct EvalCliOptions {
  std::string model, classifier, data_dir, output, sampler, device = "auto", dtype = "auto", progress = "auto";
  std::optional<std::string> schedule;
  int64_t num_samples = 10000;
  int steps = 50;
  std::optional<double> cfg_scale;
  int batch_size = 250;
  bool auto_batch = false;
  uint64_t seed = 0;
  int64_t subject = -1;
  std::string subject_word = "zq";
};

int run_eval(const EvalCliOptions& o) {
  const std::string model = o.model.empty() ? default_model_path() : o.model;
  check_model_path(model);
  const ProgressMode progress_mode = parse_progress_mode(o.progress);
  eval::EvalOptions options;
  options.num_samples = o.num_samples;
  options.steps = o.steps;
  options.sampler = o.sampler;
  options.cfg_scale = o.cfg_scale;
  options.batch_size = o.batch_size;
  options.auto_batch = o.auto_batch;
  options.seed = o.seed;
  options.subject_index = o.subject;
  options.subject_word = o.subject_word;
  options.data_dir = o.data_dir.empty() ? data::default_fashion_mnist_dir() : std::filesystem::path(o.data_dir);
  if (o.classifier.empty()) {
    auto shipped = find_shipped("fmnist-classifier.safetensors");
    if (!shipped)
      throw Error(ErrorKind::Model, "no classifier given and none shipped (searched " + shipped_search_path() +
                                        "); pass --classifier FILE or make one with `ditgen train-classifier`");
    options.classifier = *shipped;
  } else {
    options.classifier = o.classifier;
  }
  if (options.num_samples < 2) throw Error(ErrorKind::Usage, "-n must be >= 2");
  if (options.steps < 1) throw Error(ErrorKind::Usage, "--steps must be >= 1");
  if (options.batch_size < 1) throw Error(ErrorKind::Usage, "--batch-size must be >= 1");
  if (!o.output.empty()) {  // fail before the work, not after
    require_extension(o.output, ".json", "-o");
    check_run_files({{o.output, "-o"}}, {{model, "the model"}, {options.classifier, "the classifier"}});
    io::AtomicFile probe(o.output);
  }
  const at::Device device = parse_device(o.device);
  const at::ScalarType dtype = resolve_dtype(o.dtype, device);
  Generator generator(model, device, dtype);
  options.schedule = resolve_schedule(o.schedule, generator.info());
  ProgressDisplay display(progress_mode);
  std::optional<eval::EvalStage> shown;
  eval::EvalReport report = eval::evaluate(generator, options, [&](eval::EvalStage stage, const Progress& p) {
    if (stage != shown) display.start_stage(eval::eval_stage_name(stage));
    shown = stage;
    display.update(p);
  });
  display.finish();
  nlohmann::json j = report.to_json();
  j["model"] = {{"name", generator.info().name}, {"file", model}, {"sha256", generator.info().sha256}};
  j["device"] = device.str();
  j["dtype"] = dtype_label(dtype);
  const std::string text = j.dump(2) + "\n";
  if (!o.output.empty()) {
    io::AtomicFile out(o.output);
    out.write(text.data(), text.size());
    out.commit();
  }
  std::printf("%s", text.c_str());
  return 0;
}

}  // namespace

namespace {
// The shipped model file `name`; when it is nowhere to be found, Error(Model): "<what> (searched ...); <advice>".
std::string shipped_model_path(const std::string& name, const std::string& what, const std::string& advice) {
  auto shipped = find_shipped(name);
  if (!shipped) throw Error(ErrorKind::Model, what + " (searched " + shipped_search_path() + "); " + advice);
  return shipped->string();
}
}  // namespace

std::string default_model_path() {
  return shipped_model_path("scenes-dit.safetensors", "no model given and the default model was not found",
                            "pass -m FILE or set DITGEN_MODEL");
}

std::string default_video_model_path() {
  return shipped_model_path("scenes-video.safetensors", "this run makes clips, and no video model ships yet",
                            "pass -m with a video model (docs/VIDEO.md)");
}

Command add_eval_command(CLI::App& root) {
  auto o = std::make_shared<EvalCliOptions>();
  CLI::App* app = root.add_subcommand("eval", "Measure a model: FID-FMNIST against the test split, class accuracy, "
                                              "GFLOPs per image and time (JSON)");
  app->add_option("-m,--model", o->model, "Model file (default: the shipped text-to-image model, models/scenes-dit)")
      ->envname("DITGEN_MODEL");
  app->add_option("-n,--num-samples", o->num_samples,
                  "Images to generate (a text model: image i for scene-benchmark prompt i mod 2000, so 8000 "
                  "gives 4 a prompt)")
      ->capture_default_str();
  app->add_option("--steps", o->steps, "Sampling steps")->capture_default_str();
  app->add_option("--sampler", o->sampler, "Sampler (default: the model's)");
  app->add_option("--cfg-scale", o->cfg_scale, "Guidance scale (default: the model's)");
  app->add_option("--schedule", o->schedule,
                  "Compute schedule (flexible and sparse models): preset, YAML file or shorthand (default: the "
                  "model's, else dense)");
  app->add_option("--batch-size", o->batch_size, "Images per forward pass")->capture_default_str();
  app->add_flag("--auto-batch", o->auto_batch, "Out of GPU memory: halve the batch and go on");
  app->add_option("-s,--seed", o->seed, "Seed of the first image")->capture_default_str();
  app->add_option("--subject", o->subject,
                  "Subject-driven evaluation of a model fine-tuned on this test-split image (docs/INTLORA.md): "
                  "subject fidelity and prompt fidelity over 16 prompts asking for it in other colours, places "
                  "and company (image i for prompt i mod 16)");
  app->add_option("--subject-word", o->subject_word, "The word the subject is bound to")->capture_default_str();
  app->add_option("--classifier", o->classifier, "Classifier file (default: the shipped one)");
  app->add_option("--data", o->data_dir, "Fashion-MNIST folder (default: the Debian package's)");
  app->add_option("-o,--output", o->output, "Also write the JSON report to this file");
  app->add_option("--progress", o->progress, "auto (a bar on a terminal), bar, json or none")->capture_default_str();
  app->add_option("--device", o->device, "auto, cpu, cuda or cuda:N")->capture_default_str()->envname("DITGEN_DEVICE");
  app->add_option("--dtype", o->dtype, "auto, fp32, bf16 or fp16")->capture_default_str();
  return {app, [o] { return run_eval(*o); }};
}

}  // namespace ditgen::cli
