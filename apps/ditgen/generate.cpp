// `ditgen generate`: prompts (arguments or a prompt file) in, PNG images (and optionally latents, a
// trajectory video, a contact sheet and a manifest) out. One model load serves the whole run.
#include <chrono>
#include <cmath>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "commands.h"
#include "ditgen/core/device.h"
#include "ditgen/core/log.h"
#include "ditgen/io/atomic_file.h"
#include "ditgen/io/tensor_io.h"
#include "ditgen/io/video.h"
#include "ditgen/pipeline/batch.h"
#include "ditgen/pipeline/outputs.h"
#include "interrupt.h"
#include "progress.h"
#include "shipped.h"

namespace ditgen::cli {

namespace {

struct GenerateOptions {
  std::vector<std::string> prompts;
  std::string prompt_file, negative, from, config;
  std::string model;
  std::string output = "{prompt}-{seed}.png";
  std::optional<uint64_t> seed;
  std::optional<int> steps;
  std::optional<std::string> sampler;
  std::optional<double> cfg_scale;
  std::optional<int> cfg_channels;
  std::optional<std::string> schedule;
  bool merge_lora = false;
  double eta = 0.0;
  int num_images = 1;
  int batch_size = 16;
  bool auto_batch = false;
  int width = 0, height = 0;
  std::string device = "auto";
  std::string dtype = "auto";
  std::string progress = "auto";
  std::string init_noise, save_latents, save_trajectory, grid, manifest;
  bool resume = false;
};

at::Tensor read_init_noise(const std::string& path) {
  auto tensors = io::load_tensors(path, ErrorKind::Input);
  if (auto it = tensors.find("noise"); it != tensors.end()) return it->second;
  if (tensors.size() == 1) return tensors.begin()->second;
  throw Error(ErrorKind::Input, path + ": expected a tensor named 'noise' [N, C, H, W]");
}

// Fails before any compute when an output folder cannot be created or written.
void check_writable(const std::filesystem::path& file) {
  const std::filesystem::path dir = file.parent_path().empty() ? "." : file.parent_path();
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error(ErrorKind::Output, "cannot create folder " + dir.string() + ": " + ec.message());
  io::AtomicFile probe(file);  // removed again on destruction
}

void write_trajectory(const std::string& path, const at::Tensor& trajectory, int columns) {
  const int64_t T = trajectory.size(0);
  io::Image first = tile_images(trajectory[0], columns);
  io::VideoOptions options;
  options.scale = std::max(1, 256 / std::max(first.width, 1));
  io::VideoWriter video(path, first.width, first.height, first.channels, options);
  for (int64_t t = 0; t < T; ++t) video.add_frame(tile_images(trajectory[t], columns).pixels.data());
  video.finish();
}

// Gives an option a value unless the command line or its environment variable already did: how --from
// and --config sit under flags and env (flags > env > --from > --config > built-in).
void set_if_unset(CLI::App& app, const std::string& name, const std::vector<std::string>& values,
                  const std::string& source) {
  CLI::Option* opt = nullptr;
  try {
    opt = app.get_option("--" + name);
  } catch (const CLI::OptionNotFound&) {
    throw Error(ErrorKind::Input, source + ": unknown option '" + name + "'");
  }
  if (opt->count() > 0 || values.empty()) return;
  for (const auto& v : values) opt->add_result(v);
  try {
    opt->run_callback();
  } catch (const CLI::ParseError& e) {
    throw Error(ErrorKind::Input, source + ": bad value for '" + name + "': " + e.what());
  }
}

// --config FILE.yaml: a mapping of long option names (without dashes) to values or lists of values.
void apply_config(CLI::App& app, const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    throw Error(ErrorKind::Input, "cannot read config " + path);
  } catch (const YAML::Exception& e) {
    throw Error(ErrorKind::Input, path + ": " + e.what());
  }
  if (root.IsNull()) return;
  if (!root.IsMap()) throw Error(ErrorKind::Input, path + ": expected a mapping of option names to values");
  for (const auto& kv : root) {
    const std::string key = kv.first.as<std::string>();
    if (key == "config" || key == "help") throw Error(ErrorKind::Input, path + ": '" + key + "' cannot be set here");
    std::vector<std::string> values;
    if (kv.second.IsSequence()) {
      for (const auto& v : kv.second) values.push_back(v.as<std::string>());
    } else if (kv.second.IsScalar()) {
      values.push_back(kv.second.as<std::string>());
    } else {
      throw Error(ErrorKind::Input, path + ": '" + key + "' must be a value or a list");
    }
    set_if_unset(app, key, values, path);
  }
}

// --from IMAGE.png: the run recorded in the image, as defaults under the flags given beside it.
// Returns the record.
nlohmann::json apply_replay(CLI::App& app, GenerateOptions& o) {
  nlohmann::json rec = read_generation_record(o.from);
  auto text = [&](const char* key) { return rec.at(key).is_string() ? rec[key].get<std::string>() : rec[key].dump(); };
  try {
    if (o.prompts.empty() && o.prompt_file.empty()) set_if_unset(app, "prompt", {text("prompt")}, o.from);
    for (const auto& [key, option] : std::vector<std::pair<const char*, const char*>>{
             {"seed", "seed"}, {"steps", "steps"}, {"sampler", "sampler"}, {"eta", "eta"}, {"cfg_scale", "cfg-scale"},
             {"cfg_channels", "cfg-channels"}, {"height", "height"}, {"width", "width"}, {"dtype", "dtype"},
             {"schedule", "schedule"}})
      if (rec.contains(key)) set_if_unset(app, option, {text(key)}, o.from);
    if (rec.value("negative", std::string()) != "") set_if_unset(app, "negative", {text("negative")}, o.from);
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorKind::Input, o.from + ": incomplete ditgen record (" + e.what() + ")");
  }
  set_if_unset(app, "output", {std::filesystem::path(o.from).stem().string() + "-replay.png"}, o.from);
  if (o.model.empty()) {
    const std::string file = rec.contains("model") ? rec["model"].value("file", std::string()) : "";
    auto found = file.empty() ? std::nullopt : find_shipped(file);
    if (!found && !file.empty() && std::filesystem::exists(file)) found = file;
    if (!found)
      throw Error(ErrorKind::Model, o.from + " was made with model '" + file + "', which was not found; pass -m FILE");
    o.model = found->string();
  }
  return rec;
}

int run_generate(CLI::App& app, GenerateOptions& o) {
  catch_interrupts();  // from the start: a Ctrl-C during loading stops the run cleanly before its first batch
  const nlohmann::json replayed = o.from.empty() ? nlohmann::json() : apply_replay(app, o);
  if (!o.config.empty()) apply_config(app, o.config);
  if (!o.prompt_file.empty() && !o.prompts.empty())
    throw Error(ErrorKind::Usage, "give prompts either as arguments or in --prompt-file, not both");
  if (o.prompts.empty() && o.prompt_file.empty())
    throw Error(ErrorKind::Usage, "no prompt given (e.g. ditgen generate -m MODEL sneaker, or --prompt-file FILE)");
  if (o.num_images < 1) throw Error(ErrorKind::Usage, "--num-images must be >= 1");
  if (o.batch_size < 1) throw Error(ErrorKind::Usage, "--batch-size must be >= 1");
  if (o.steps && *o.steps < 1) throw Error(ErrorKind::Usage, "--steps must be >= 1, got " + std::to_string(*o.steps));
  if (!o.save_trajectory.empty() && !io::video_supported())
    throw Error(ErrorKind::Usage, "--save-trajectory needs video support, which this build lacks (no FFmpeg)");
  if (o.resume && (!o.save_latents.empty() || !o.save_trajectory.empty()))
    throw Error(ErrorKind::Usage, "--resume cannot be combined with --save-latents or --save-trajectory");
  const ProgressMode progress_mode = parse_progress_mode(o.progress);
  const at::Device device = parse_device(o.device);
  const at::ScalarType dtype = resolve_dtype(o.dtype, device);
  std::vector<io::PromptEntry> entries;
  if (!o.prompt_file.empty()) {
    entries = io::read_prompt_file(o.prompt_file);
    if (entries.empty()) throw Error(ErrorKind::Input, "prompt file " + o.prompt_file + " has no prompts");
  } else {
    for (const auto& p : o.prompts) {
      io::PromptEntry entry;
      entry.prompt = p;
      entries.push_back(entry);
    }
  }
  const std::string model = o.model.empty() ? default_model_path() : o.model;
  if (!std::filesystem::exists(model)) throw Error(ErrorKind::Model, "model file not found: " + model);

  const auto load_start = std::chrono::steady_clock::now();
  Generator generator(model, device, dtype);
  const ModelInfo& info = generator.info();
  if (o.merge_lora) {
    if (!info.config.flex.lora())
      throw Error(ErrorKind::Usage, "--merge-lora needs a flexible model with per-patch LoRA adapters");
    generator.set_lora_merged(true);
  }
  (o.prompt_file.empty() ? log::debug : log::info)(c10::str("loaded model ", info.name, " (", model, ") on ", device.str(), " ", dtype_label(dtype), " in ",
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count(), " s"));

  BatchSettings settings;
  settings.seed = o.seed ? *o.seed : std::random_device{}() & 0xffffffffu;
  const SamplerDefaults& d = info.sampler_defaults;
  settings.sampler = {o.sampler.value_or(d.sampler), o.steps.value_or(d.steps), o.eta};
  settings.guidance = {o.cfg_scale.value_or(d.cfg_scale), o.cfg_channels.value_or(d.cfg_channels)};
  settings.schedule = resolve_schedule(o.schedule, info);
  settings.resolve_schedule = [](const std::string& spec) { return resolve_schedule(spec); };
  if (!o.negative.empty() && o.negative != "none") settings.negative = o.negative;
  settings.width = o.width;
  settings.height = o.height;
  settings.num_images = o.num_images;
  settings.batch_size = o.batch_size;
  settings.auto_batch = o.auto_batch;
  settings.resume = o.resume;
  settings.strict = o.prompt_file.empty();  // bad arguments stop the run; bad prompt-file lines do not
  settings.keep_frames = !o.save_latents.empty() || !o.grid.empty();
  settings.keep_trajectory = !o.save_trajectory.empty();
  if (!o.init_noise.empty()) settings.init_noise = read_init_noise(o.init_noise).to(at::kFloat);
  const bool images = info.config.in_channels == 1 || info.config.in_channels == 3;
  if (!images && o.save_latents.empty())
    throw Error(ErrorKind::Usage, "this model makes " + std::to_string(info.config.in_channels) +
                                      "-channel latents that ditgen cannot decode yet; pass --save-latents FILE");
  if (!images && (!o.save_trajectory.empty() || !o.grid.empty()))
    throw Error(ErrorKind::Usage, "--save-trajectory and --grid need a pixel-space model (1 or 3 channels)");
  if (images) settings.output_template = o.output;
  BatchRun run(generator, entries, settings, device.str());  // every usage error before any file is written

  std::set<std::filesystem::path> folders_checked;
  for (const BatchItem& item : run.items())
    if (!item.path.empty() && folders_checked.insert(item.path.parent_path()).second) check_writable(item.path);
  std::filesystem::path manifest = o.manifest;
  if (manifest.empty() && !o.prompt_file.empty()) {
    const auto& first = run.items().front().path;
    manifest = (first.empty() ? std::filesystem::path(".") : first.parent_path()) / "manifest.jsonl";
  }
  for (const std::string& extra : {o.save_latents, o.save_trajectory, o.grid, manifest.string()})
    if (!extra.empty()) check_writable(extra);
  if (!run.items().empty() && run.items().front().status != ItemStatus::Failed) {
    const nlohmann::json& first = run.items().front().record;
    log::debug(c10::str(run.items().size(), " image(s), ", settings.sampler.name, " ", settings.sampler.steps,
                        " steps, cfg ", settings.guidance.scale, ", schedule ", first["schedule"].get<std::string>(),
                        ": ", first["gflops"].get<double>(), " GFLOPs per image"));
    log::debug("GFLOPs per step: " + first["gflops_per_step"].dump());
  }

  for (const BatchItem& item : run.items())  // unusable prompt-file lines: reported, the others still run
    if (item.status == ItemStatus::Failed) log::error(item.error);
  if (!replayed.is_null()) {
    const std::string want = replayed.contains("model") ? replayed["model"].value("sha256", std::string()) : "";
    if (!want.empty() && want != info.sha256)
      log::warn(o.from + " was made with another model file (sha256 " + want.substr(0, 12) + "...): it will differ");
  }
  ProgressDisplay display(progress_mode);
  auto last_manifest = std::chrono::steady_clock::now();
  const BatchSummary summary = run.run(
      [] { return interrupt_count() >= 1; }, [] { return interrupt_count() >= 2; },
      [&](const BatchItem& item) {
        if (item.status == ItemStatus::Ok && !item.path.empty()) std::printf("%s\n", item.path.string().c_str());
        if (item.status == ItemStatus::Failed) log::error(item.error);
        if (!manifest.empty() && std::chrono::steady_clock::now() - last_manifest > std::chrono::seconds(2)) {
          run.write_manifest(manifest);  // a run killed outright still leaves a recent manifest
          last_manifest = std::chrono::steady_clock::now();
        }
      },
      [&](const Progress& p) { display.update(p); });
  display.finish();
  std::fflush(stdout);
  if (!manifest.empty()) run.write_manifest(manifest);

  const bool interrupted = interrupt_count() > 0;
  if (!interrupted) {
    if (!o.save_latents.empty()) {
      const BatchItem& first = run.items().front();
      io::save_tensors(o.save_latents, {{"latents", run.frames().select(1, 0)}},
                       {{"ditgen.record", first.record.dump()}});
      std::printf("%s\n", o.save_latents.c_str());
    }
    if (!o.save_trajectory.empty()) {
      write_trajectory(o.save_trajectory, run.trajectory(), 8);
      std::printf("%s\n", o.save_trajectory.c_str());
    }
    if (!o.grid.empty()) {
      std::vector<at::Tensor> frames;
      for (const BatchItem& item : run.items()) {
        if (item.status == ItemStatus::Skipped) {
          io::Image im = io::read_png(item.path);
          at::Tensor t = at::from_blob(im.pixels.data(), {im.height, im.width, im.channels}, at::kByte);
          frames.push_back(t.permute({2, 0, 1}).to(at::kFloat) / 127.5 - 1);  // [C, H, W]
        } else if (item.status == ItemStatus::Ok) {
          frames.push_back(run.frame(item.index));
        }
      }
      if (!frames.empty()) {
        const int columns = static_cast<int>(std::ceil(std::sqrt(static_cast<double>(frames.size()))));
        io::write_png(o.grid, tile_images(at::stack(frames), columns));
        std::printf("%s\n", o.grid.c_str());
      }
    }
  }
  const int total = static_cast<int>(run.items().size());
  if (!o.prompt_file.empty() || summary.failed || summary.skipped || interrupted)
    log::info(c10::str(total, " image(s): ", summary.ok, " generated, ", summary.skipped, " already complete, ",
                       summary.failed, " failed, ", summary.cancelled, " not run, in ",
                       std::round(summary.seconds * 10) / 10, " s",
                       manifest.empty() ? std::string() : "; manifest " + manifest.string()));
  if (interrupted) {
    log::warn("interrupted: finished images are kept; run again with --resume to finish");
    return kInterruptedExitCode;
  }
  return summary.failed ? exit_code(ErrorKind::Partial) : 0;
}

}  // namespace

Command add_generate_command(CLI::App& root) {
  auto o = std::make_shared<GenerateOptions>();
  CLI::App* app = root.add_subcommand("generate", "Generate images from prompts (class names or ids)");
  const std::string prompts = "Prompts", model = "Model and device", sampling = "Sampling", output = "Output";
  app->add_option("prompts", o->prompts, "Prompts: class names (case-insensitive) or class ids")->group(prompts);
  app->add_option("-p,--prompt", o->prompts, "A prompt (repeatable; same as a positional prompt)")->group(prompts);
  app->add_option("-f,--prompt-file", o->prompt_file,
                  "Prompts from a file ('-' = stdin): one per line, '#' comments; or JSON lines with prompt, "
                  "negative, seed, steps, cfg, size, n, schedule (docs/BATCH.md)")
      ->group(prompts);
  app->add_option("--negative", o->negative,
                  "Negative prompt: the class the guidance steers away from (default: the null condition)")
      ->group(prompts);
  app->add_option("--from", o->from,
                  "Replay the run recorded in a PNG ditgen wrote (flags given beside it win)")
      ->group(prompts);
  app->add_option("--config", o->config,
                  "YAML file of defaults: option names without dashes -> values (flags > env > config)")
      ->group(prompts);
  app->add_option("-m,--model", o->model, "Model file (.safetensors); default: the shipped Fashion-MNIST model")
      ->envname("DITGEN_MODEL")
      ->group(model);
  app->add_option("--device", o->device, "auto, cpu, cuda or cuda:N")
      ->capture_default_str()
      ->envname("DITGEN_DEVICE")
      ->group(model);
  app->add_option("--dtype", o->dtype, "auto (bf16 on CUDA, fp32 on CPU), fp32, bf16 or fp16")
      ->capture_default_str()
      ->group(model);
  app->add_flag("--merge-lora", o->merge_lora,
                "Flexible LoRA models: merge each patch size's adapters into a weight copy (no extra FLOPs, more memory)")
      ->group(model);
  app->add_option("-s,--seed", o->seed, "Seed of the first image; image i of the run uses seed + i (default: random)")
      ->group(sampling);
  app->add_option("-n,--num-images", o->num_images, "Images per prompt")->capture_default_str()->group(sampling);
  app->add_option("--steps", o->steps, "Sampling steps (default: the model's)")->group(sampling);
  app->add_option("--sampler", o->sampler, "ddim or ddpm (diffusion models), euler (flow models); default: the model's")
      ->group(sampling);
  app->add_option("--eta", o->eta, "DDIM stochasticity (0 = deterministic)")->capture_default_str()->group(sampling);
  app->add_option("--cfg-scale", o->cfg_scale, "Classifier-free guidance scale; 1 = off (default: the model's)")
      ->group(sampling);
  app->add_option("--cfg-channels", o->cfg_channels,
                  "Guide only the first N channels (3 = the official DiT's variant); 0 = all (default: the model's)")
      ->group(sampling);
  app->add_option("--schedule", o->schedule,
                  "Compute schedule of a flexible model: a preset (configs/schedules: flexi-64, flexi-55, ...), a "
                  "YAML file, or the shorthand, e.g. weak=4:0.4 = patch 4 for the first 40% of steps "
                  "(docs/FLEXIDIT.md), or a sparse model's density=6:10 (docs/SPARSEDIT.md); default: the model's, "
                  "else dense")
      ->group(sampling);
  app->add_option("--width", o->width, "Width in model units (pixels or latents); default: the model's")->group(sampling);
  app->add_option("--height", o->height, "Height in model units; default: the model's")->group(sampling);
  app->add_option("--batch-size", o->batch_size, "Images per forward pass (compatible prompts share it)")
      ->capture_default_str()
      ->group(sampling);
  app->add_flag("--auto-batch", o->auto_batch,
                "Out of GPU memory: halve the batch and go on (every image stays its seed's) instead of stopping "
                "with a message naming a batch size that fits");
  app->add_option("-o,--output", o->output, "Output name template; fields {index} {index:N} {seed} {prompt} {class}")
      ->capture_default_str()
      ->group(output);
  app->add_option("--grid", o->grid, "Also write a contact sheet of the run's images to this PNG")->group(output);
  app->add_option("--manifest", o->manifest,
                  "JSON lines, one per output (default with --prompt-file: manifest.jsonl beside the images)")
      ->group(output);
  app->add_flag("--resume", o->resume, "Skip outputs that already exist complete (checked through their metadata)")
      ->group(output);
  app->add_option("--progress", o->progress, "auto (a bar on a terminal), bar, json or none")
      ->capture_default_str()
      ->group(output);
  app->add_option("--init-noise", o->init_noise, "Initial noise: safetensors file with 'noise' [N, C, H, W]")
      ->group(output);
  app->add_option("--save-latents", o->save_latents, "Write the final samples as safetensors ('latents')")
      ->group(output);
  app->add_option("--save-trajectory", o->save_trajectory, "Write the denoising trajectory as an H.264 MP4")
      ->group(output);
  return {app, [o, app] { return run_generate(*app, *o); }};
}

}  // namespace ditgen::cli
