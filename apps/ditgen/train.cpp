// `ditgen train`: train or fine-tune a model from a YAML config; `ditgen train-classifier`: the
// Fashion-MNIST classifier behind FID-FMNIST and class accuracy.
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "commands.h"
#include "interrupt.h"
#include "ditgen/core/device.h"
#include "ditgen/core/format.h"
#include "ditgen/core/log.h"
#include "ditgen/data/fashion_mnist.h"
#include "ditgen/data/moving_scenes.h"
#include "ditgen/data/scenes.h"
#include "ditgen/data/subject_scenes.h"
#include "ditgen/dist/rendezvous.h"
#include "ditgen/eval/classifier.h"
#include "ditgen/train/trainer.h"

namespace ditgen::cli {

namespace {

struct TrainOptions {
  std::string config;
  bool resume = false;
  std::string device;
  int64_t stop_after = 0;
};

int run_train(const TrainOptions& o) {
  catch_interrupts(InterruptMode::Train);  // Ctrl-C or kill: stop after the step in flight, with a checkpoint
  train::TrainConfig config = train::load_train_config(o.config);
  if (!o.device.empty()) config.device = o.device;
  // A data-parallel run (docs/DISTRIBUTED.md): one device a process, rank 0 reports and writes.
  const dist::DistEnv dist_env = dist::read_dist_env();
  std::optional<dist::Rendezvous> rendezvous;
  if (dist_env.distributed()) {
    rendezvous.emplace(dist_env);
    const c10::Device device = dist::rank_device(config.device, dist_env);
    dist::make_current(device);
    config.device = device.str();
  }
  const bool lead = dist_env.rank == 0;
  const ModelInfo spec = train::run_model_info(config, o.resume);
  const std::filesystem::path dir = config.data_dir.empty() ? data::default_fashion_mnist_dir() : config.data_dir;
  // A video model learns from moving scenes (still ones mixed in), a text model from captioned scenes of
  // Fashion-MNIST items, a class model from the items.
  std::unique_ptr<data::Dataset> images;
  const bool clips = spec.config.video() || config.video;
  if (clips) {
    const train::VideoTraining video = config.video.value_or(train::VideoTraining{spec.config.input_frames});
    images = std::make_unique<data::MovingScenesDataset>(dir, data::Split::Train, config.scenes, config.seed,
                                                         data::MovingScenesOptions{video.frames, video.still_share});
  } else if (config.subject) {
    data::SubjectOptions subject = *config.subject;
    subject.seed = config.seed;
    images = std::make_unique<data::SubjectScenesDataset>(dir, config.scenes, subject);
  } else if (spec.config.text.enabled())
    images = std::make_unique<data::ScenesDataset>(dir, data::Split::Train, config.scenes, config.seed);
  else
    images = std::make_unique<data::FashionMnist>(dir, data::Split::Train, spec.config.input_height);
  (lead ? log::info : log::debug)(c10::str("training ", spec.name, " on ", images->size(),
                     clips ? " captioned clips" : spec.config.text.enabled() ? " captioned scenes" : " Fashion-MNIST images", " for ",
                     config.steps, " steps (batch ", config.batch_size, ") into ", config.output.string()));
  auto result = train::train_model(
      config, *images, o.resume,
      [](const train::TrainProgress& p) {
        log::info(c10::str("step ", p.step, "/", p.steps, "  loss ", format_number(p.loss, 4), "  lr ",
                           format_number(p.lr), "  grad norm ", format_number(p.grad_norm), "  ",
                           format_number(p.images_per_second), " img/s  ", format_seconds(p.elapsed_s)));
      },
      o.stop_after, [] { return interrupt_count() > 0; }, rendezvous ? &*rendezvous : nullptr);
  if (!lead) return interrupt_count() > 0 && result.steps < config.steps ? kInterruptedExitCode : 0;
  if (interrupt_count() > 0 && result.model_path.empty()) {
    log::warn(c10::str("interrupted: stopped at step ", result.steps, " with a checkpoint; resume with --resume"));
    return kInterruptedExitCode;
  }
  if (result.model_path.empty()) {
    log::info(c10::str("stopped at step ", result.steps, "; resume with --resume"));
  } else {
    std::printf("%s\n", result.model_path.string().c_str());
  }
  return 0;
}

struct ClassifierOptions {
  std::string output, data_dir, device = "auto";
  int epochs = 10;
  uint64_t seed = 0;
};

int run_train_classifier(const ClassifierOptions& o) {
  eval::ClassifierTrainOptions options;
  options.data_dir = o.data_dir.empty() ? data::default_fashion_mnist_dir() : std::filesystem::path(o.data_dir);
  options.epochs = o.epochs;
  options.seed = o.seed;
  options.device = parse_device(o.device);
  eval::ClassifierReport report = eval::train_classifier(options, o.output);
  log::info(c10::str("test accuracy ", format_number(report.test_accuracy * 100, 4), "% after ", report.epochs,
                     " epochs (", format_seconds(report.train_seconds), ")"));
  std::printf("%s\n", o.output.c_str());
  return 0;
}

}  // namespace

Command add_train_command(CLI::App& root) {
  auto o = std::make_shared<TrainOptions>();
  CLI::App* app = root.add_subcommand("train", "Train or fine-tune a model from a YAML config (see configs/train)");
  app->add_option("config", o->config, "Training config (YAML)")->required();
  app->add_flag("--resume", o->resume,
                "Continue the run from its output folder's checkpoint (Ctrl-C or SIGTERM stops a run with one: exit 130)");
  app->add_option("--device", o->device, "auto, cpu, cuda or cuda:N (overrides the config)");
  app->add_option("--stop-after", o->stop_after, "Stop after this step with a checkpoint (resume later)");
  return {app, [o] { return run_train(*o); }};
}

Command add_train_classifier_command(CLI::App& root) {
  auto o = std::make_shared<ClassifierOptions>();
  CLI::App* app = root.add_subcommand("train-classifier",
                                      "Train the Fashion-MNIST classifier used by `eval` (FID-FMNIST, accuracy)");
  app->add_option("-o,--output", o->output, "Classifier file to write (.safetensors)")->required();
  app->add_option("--data", o->data_dir, "Fashion-MNIST folder (default: the Debian package's)");
  app->add_option("--epochs", o->epochs, "Epochs")->capture_default_str();
  app->add_option("--seed", o->seed, "Seed")->capture_default_str();
  app->add_option("--device", o->device, "auto, cpu, cuda or cuda:N")->capture_default_str();
  return {app, [o] { return run_train_classifier(*o); }};
}

}  // namespace ditgen::cli
