// `ditgen generate`: prompts (arguments or a prompt file) in, PNG images or a video model's clips (MP4, WebM,
// GIF, PNG frames), and optionally latents, a trajectory video, a contact sheet and a manifest, out. One model
// load serves the whole run; a latent model's outputs are decoded by a VAE (--vae, or the model's default).
#include <charconv>
#include <chrono>
#include <cmath>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "commands.h"
#include "ditgen/core/device.h"
#include "ditgen/core/format.h"
#include "ditgen/core/log.h"
#include "ditgen/io/atomic_file.h"
#include "ditgen/io/tensor_io.h"
#include "ditgen/io/video.h"
#include "ditgen/io/yaml_json.h"
#include "ditgen/pipeline/batch.h"
#include "ditgen/pipeline/outputs.h"
#include "ditgen/dist/launch.h"
#include "ditgen/dist/cfg_parallel.h"
#include "ditgen/dist/rendezvous.h"
#include "ditgen/vae/tiled_decode.h"
#include "ditgen/vae/vae_file.h"
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
  std::string seed;
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
  std::optional<int> width, height;
  std::optional<int> frames;
  int fps = 8;
  std::string format;
  bool any_size = false;
  std::string device = "auto";
  std::string dtype = "auto";
  std::string progress = "auto";
  std::string init_noise, save_latents, save_trajectory, grid, manifest;
  std::string vae, vae_tile = "auto";
  bool resume = false;
  bool cfg_parallel = false;
};

constexpr int kMaxImagesPerPrompt = 10000;

// The VAE a run decodes with: --vae, else a latent model's default (its metadata names it beside the model
// file); "" for none.
std::string vae_path_for(const GenerateOptions& o, const ModelInfo& info, const std::string& model) {
  if (!o.vae.empty() || info.default_vae.empty()) return o.vae;
  return (std::filesystem::path(model).parent_path() / info.default_vae).string();
}

at::Tensor read_init_noise(const std::string& path) {
  auto tensors = io::load_tensors(path, ErrorKind::Input);
  at::Tensor noise;
  if (auto it = tensors.find("noise"); it != tensors.end()) noise = it->second;
  else if (tensors.size() == 1) noise = tensors.begin()->second;
  if (!noise.defined() || noise.dim() != 4)
    throw Error(ErrorKind::Input, path + ": expected a tensor named 'noise' [N, C, H, W]" +
                                      (noise.defined() ? ", got " + std::to_string(noise.dim()) + " dimensions" : ""));
  return noise;
}

// -s: a seed in 0..2^64-1, or -1 / "random" for a random one (nullopt).
std::optional<uint64_t> parse_seed(const std::string& text) {
  if (text.empty() || text == "-1" || text == "random") return std::nullopt;
  uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size())
    throw Error(ErrorKind::Usage, "--seed must be a whole number from 0 to 18446744073709551615, or -1 for a random "
                                  "seed; got '" + text + "'");
  return value;
}

// The seed a run to resume was started with, from its manifest; Error(Usage) when there is none to read.
uint64_t resumed_run_seed(const std::filesystem::path& manifest) {
  std::optional<uint64_t> seed = manifest.empty() ? std::nullopt : recorded_run_seed(manifest);
  if (!seed)
    throw Error(ErrorKind::Usage, "--resume without --seed needs the seed of the run it finishes" +
                                      (manifest.empty() ? std::string() : ", and " + manifest.string() + " does not record it") +
                                      ": pass -s N (ditgen printed it when the run was interrupted)");
  return *seed;
}

// Fails before any compute when an output folder cannot be created or written.
void check_writable(const std::filesystem::path& file) {
  const std::filesystem::path dir = file.parent_path().empty() ? "." : file.parent_path();
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error(ErrorKind::Output, "cannot create folder " + dir.string() + ": " + ec.message());
  io::AtomicFile probe(file);  // removed again on destruction
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
  const YAML::Node root = io::load_yaml_file(path);  // a bounded regular file; errors name it
  if (root.IsNull()) return;
  if (!root.IsMap()) throw Error(ErrorKind::Input, path + ": expected a mapping of option names to values");
  for (const auto& kv : root) {
    if (!kv.first.IsScalar()) throw Error(ErrorKind::Input, path + ": option names must be plain words");
    const std::string key = kv.first.as<std::string>();
    if (key == "config" || key == "help") throw Error(ErrorKind::Input, path + ": '" + key + "' cannot be set here");
    std::vector<std::string> values;
    if (kv.second.IsSequence()) {
      for (const auto& v : kv.second) {
        if (!v.IsScalar()) throw Error(ErrorKind::Input, path + ": '" + key + "' must be a value or a list of values");
        values.push_back(v.as<std::string>());
      }
    } else if (kv.second.IsScalar()) {
      values.push_back(kv.second.as<std::string>());
    } else {
      throw Error(ErrorKind::Input, path + ": '" + key + "' must be a value or a list");
    }
    set_if_unset(app, key, values, path);
  }
}

// --from IMAGE.png: the run recorded in the image, as defaults under the flags given beside it; the replay
// is written beside the image. Its model and VAE are found by their recorded names unless -m and --vae name
// them. Returns the record (its files' hashes, for warnings).
ReplayRecord apply_replay(CLI::App& app, GenerateOptions& o) {
  const ReplayRecord replay = parse_replay_record(read_generation_record(o.from), o.from);
  for (const auto& [option, value] : replay.options)
    if (option != "prompt" || (o.prompts.empty() && o.prompt_file.empty())) set_if_unset(app, option, {value}, o.from);
  std::filesystem::path from(o.from);
  if (from.filename().empty()) from = from.parent_path();  // "frames/" names the folder "frames"
  // The replay is written beside the original, in its kind: a PNG, a clip file, or a folder of PNG frames.
  const bool frames_folder = std::filesystem::is_directory(from);
  if (frames_folder) set_if_unset(app, "format", {"png"}, o.from);
  const std::string extension = frames_folder ? "" : from.has_extension() ? from.extension().string() : ".png";
  set_if_unset(app, "output", {(from.parent_path() / (from.stem().string() + "-replay" + extension)).string()}, o.from);
  if (o.model.empty()) {
    const std::string& file = replay.model_file;
    auto found = file.empty() ? std::nullopt : find_shipped(file);
    if (!found && !file.empty() && std::filesystem::exists(file)) found = file;
    if (!found)
      throw Error(ErrorKind::Model, o.from + " was made with model '" + file + "', which was not found; pass -m FILE");
    o.model = found->string();
  }
  if (!replay.vae_file.empty() && o.vae.empty()) {
    // Beside the model (where a model's default VAE lives), in the working folder, or shipped.
    const std::filesystem::path beside = std::filesystem::path(o.model).parent_path() / replay.vae_file;
    std::optional<std::filesystem::path> found;
    if (std::filesystem::exists(beside)) found = beside;
    else if (std::filesystem::exists(replay.vae_file)) found = replay.vae_file;
    else found = find_shipped(replay.vae_file);
    if (!found)
      throw Error(ErrorKind::Model, o.from + " was decoded with VAE '" + replay.vae_file +
                                        "', which was not found beside the model, here or shipped; pass --vae FILE");
    o.vae = found->string();
  }
  return replay;
}

int run_generate(CLI::App& app, GenerateOptions& o) {
  catch_interrupts(InterruptMode::Generate);  // from the start; SIGTERM (kill, timeout) stops as Ctrl-C does
  const ReplayRecord replayed = o.from.empty() ? ReplayRecord{} : apply_replay(app, o);
  if (!o.config.empty()) apply_config(app, o.config);
  if (!o.prompt_file.empty() && !o.prompts.empty())
    throw Error(ErrorKind::Usage, "give prompts either as arguments or in --prompt-file, not both");
  if (o.prompts.empty() && o.prompt_file.empty())
    throw Error(ErrorKind::Usage, "no prompt given (e.g. ditgen generate -m MODEL sneaker, or --prompt-file FILE)");
  if (o.num_images < 1 || o.num_images > kMaxImagesPerPrompt)
    throw Error(ErrorKind::Usage, "--num-images must be 1.." + std::to_string(kMaxImagesPerPrompt));
  if (o.batch_size < 1) throw Error(ErrorKind::Usage, "--batch-size must be >= 1");
  if (o.steps && *o.steps < 1) throw Error(ErrorKind::Usage, "--steps must be >= 1, got " + std::to_string(*o.steps));
  for (const auto& [name, value] : {std::pair{"--width", o.width}, std::pair{"--height", o.height}})
    if (value && *value < 1) throw Error(ErrorKind::Usage, std::string(name) + " must be >= 1 (leave it out for the model's size)");
  if (!o.save_trajectory.empty() && !io::video_supported())
    throw Error(ErrorKind::Usage, "--save-trajectory needs video support, which this build lacks (no FFmpeg)");
  if (o.resume && (!o.save_latents.empty() || !o.save_trajectory.empty()))
    throw Error(ErrorKind::Usage, "--resume cannot be combined with --save-latents or --save-trajectory");
  // A run makes clips when it asks for frames, a container or a clip's name; its model decides in the end.
  const bool output_given = app.get_option("--output")->count() > 0;
  const bool clip_asked = (o.frames && *o.frames > 1) || !o.format.empty() ||
                          (output_given && io::video_format_of_extension(o.output));
  if (o.fps < 1 || o.fps > 1000) throw Error(ErrorKind::Usage, "--fps must be in 1..1000");
  if (o.frames && *o.frames < 1) throw Error(ErrorKind::Usage, "--frames must be >= 1");
  for (const auto& [path, extension, role] : {std::tuple{o.grid, ".png", "--grid"},
                                              std::tuple{o.save_trajectory, ".mp4", "--save-trajectory"},
                                              std::tuple{o.save_latents, ".safetensors", "--save-latents"}})
    if (!path.empty()) require_extension(path, extension, role);
  std::optional<uint64_t> seed = parse_seed(o.seed);
  const ProgressMode progress_mode = parse_progress_mode(o.progress);
  // A data-parallel run (docs/DISTRIBUTED.md): its processes meet first, so a bad request fails in each alike.
  const dist::DistEnv dist_env = dist::read_dist_env();
  std::optional<dist::Rendezvous> rendezvous;
  if (dist_env.distributed()) {
    if (!o.save_latents.empty() || !o.save_trajectory.empty())
      throw Error(ErrorKind::Usage, "--save-latents and --save-trajectory gather every image into one process: "
                                    "run them in one process");
    rendezvous.emplace(dist_env);
  }
  const at::Device device = dist::rank_device(o.device, dist_env);
  if (rendezvous) dist::make_current(device);
  // CFG-parallel: processes pair up, the pair's branches split; pairs share the batches out as ranks do.
  std::shared_ptr<dist::CfgPair> pair;
  if (o.cfg_parallel) {
    if (!rendezvous)
      throw Error(ErrorKind::Usage, "--cfg-parallel splits each image's two guidance branches between two processes: "
                                    "add --nproc-per-node 2 (or launch an even number with torchrun)");
    pair = std::make_shared<dist::CfgPair>(*rendezvous, device);
  }
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
  // The manifest goes beside the images: the output template's folder when its folder part is fixed.
  std::filesystem::path manifest = o.manifest;
  if (manifest.empty() && !o.prompt_file.empty()) {
    const std::filesystem::path folder = std::filesystem::path(o.output).parent_path();  // "out/" is out
    manifest = (folder.empty() || folder.string().find('{') != std::string::npos ? std::filesystem::path(".") : folder) /
               "manifest.jsonl";
  }
  if (o.resume && !seed) seed = resumed_run_seed(manifest);
  const vae::TileChoice vae_tile = vae::parse_tile_choice(o.vae_tile);
  const std::string model = !o.model.empty() ? o.model : clip_asked ? default_video_model_path() : default_model_path();
  check_model_path(model);

  const auto load_start = std::chrono::steady_clock::now();
  Generator generator(model, device, dtype);
  const ModelInfo& info = generator.info();
  if (pair) generator.set_branch_exchange(pair);
  if (o.merge_lora) {
    if (!info.config.flex.lora())
      throw Error(ErrorKind::Usage, "--merge-lora needs a flexible model with per-patch LoRA adapters");
    generator.set_lora_merged(true);
  }
  (o.prompt_file.empty() ? log::debug : log::info)(
      c10::str("loaded model ", info.name, " (", model, ") on ", device.str(), " ", dtype_label(dtype), " in ",
               format_seconds(std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count())));

  BatchSettings settings;
  settings.seed = seed ? *seed : std::random_device{}() & 0xffffffffu;
  if (rendezvous) settings.seed = rendezvous->broadcast("seed", settings.seed).get<uint64_t>();  // rank 0's
  settings.shard = pair ? pair->pair() : dist_env.rank;
  settings.shards = pair ? pair->pairs() : dist_env.world_size;
  settings.partner = pair && !pair->writer();
  const SamplerDefaults& d = info.sampler_defaults;
  settings.sampler = {o.sampler.value_or(d.sampler), o.steps.value_or(d.steps), o.eta};
  settings.guidance = {o.cfg_scale.value_or(d.cfg_scale), o.cfg_channels.value_or(d.cfg_channels)};
  settings.schedule = resolve_schedule(o.schedule, info);
  settings.resolve_schedule = [](const std::string& spec) { return resolve_schedule(spec); };
  if (!o.negative.empty() && o.negative != "none") settings.negative = o.negative;
  settings.width = o.width.value_or(0);
  settings.height = o.height.value_or(0);
  settings.frames = o.frames.value_or(0);
  settings.fps = o.fps;
  settings.video_format = o.format;
  const bool clips = run_frames(info.config, settings.frames) > 1;  // Error(Usage): clips from an image model
  if (!clips && clip_asked)
    throw Error(ErrorKind::Usage, "this run makes images (PNG): clips (" +
                                      (output_given ? o.output : "--format " + o.format) +
                                      ") need a video model and more than one frame");
  const std::string output_template =
      clips ? clip_template_from(output_given ? o.output : "./", o.format) : output_template_from(o.output);
  settings.allow_untrained_size = o.any_size;
  settings.num_images = o.num_images;
  settings.batch_size = o.batch_size;
  settings.auto_batch = o.auto_batch;
  settings.resume = o.resume;
  settings.strict = o.prompt_file.empty();  // bad arguments stop the run; bad prompt-file lines do not
  settings.keep_frames = !o.save_latents.empty() || !o.grid.empty();  // a latent model's grid reads its PNGs back
  settings.keep_trajectory = !o.save_trajectory.empty();
  if (!o.init_noise.empty()) settings.init_noise = read_init_noise(o.init_noise).to(at::kFloat);
  const bool pixel_model = info.config.in_channels == 1 || info.config.in_channels == 3;
  if (pixel_model && !o.vae.empty())
    throw Error(ErrorKind::Usage, "--vae needs a latent model; this one makes " + std::to_string(info.config.in_channels) +
                                      "-channel images itself");
  const std::string vae_path = pixel_model ? "" : vae_path_for(o, info, model);
  std::optional<vae::LoadedVae> vae;  // weights and shape checked before any output is written
  if (!vae_path.empty()) {
    vae = vae::load_vae(vae_path, device, dtype);
    const vae::VaeConfig& c = vae->info.config;
    if (c.latent_channels != info.config.in_channels)
      throw Error(ErrorKind::Model, vae_path + ": the VAE decodes " + std::to_string(c.latent_channels) +
                                        "-channel latents but the model makes " + std::to_string(info.config.in_channels));
    if (c.out_channels != 1 && c.out_channels != 3)
      throw Error(ErrorKind::Model, vae_path + ": the VAE makes " + std::to_string(c.out_channels) +
                                        "-channel images; PNGs need 1 or 3");
    for (const std::string& field : vae->info.defaulted)
      log::info(vae_path + " does not record its " + field + "; using the SD-VAE's (" +
                (field == "scaling_factor" ? format_number(c.scaling_factor) : std::to_string(c.norm_num_groups)) + ")");
    settings.vae_record = {{"file", std::filesystem::path(vae_path).filename().string()},
                           {"sha256", vae->info.sha256},
                           {"tile", vae::to_string(vae_tile)}};
    settings.decode = [&vae, vae_tile, device, dtype](const at::Tensor& latents) {
      const vae::DecodePlan plan = vae::plan_decode(vae->info.config, latents.size(0), latents.size(2), latents.size(3),
                                                    vae_tile, dtype, available_memory_bytes(device));
      log::debug(c10::str("decoding ", latents.size(0), " image(s) ",
                          plan.tile ? c10::str("in tiles of ", plan.tile, " latents (overlap ", plan.overlap, ")")
                                    : std::string("whole"),
                          ", ", plan.chunk, " at a time"));
      return vae::decode_latents(vae->model, latents, plan);
    };
  }
  const bool images = pixel_model || vae.has_value();
  if (!images && o.save_latents.empty())
    throw Error(ErrorKind::Usage, "this model makes " + std::to_string(info.config.in_channels) +
                                      "-channel latents: pass --vae FILE (a Stable Diffusion VAE, docs/VAE.md) to "
                                      "decode them into images, or --save-latents FILE to keep them");
  if (!pixel_model && !o.save_trajectory.empty())
    throw Error(ErrorKind::Usage, "--save-trajectory needs a pixel-space model (1 or 3 channels): a latent model's "
                                  "trajectory is latents");
  if (!images && !o.grid.empty())
    throw Error(ErrorKind::Usage, "--grid needs images: pass --vae FILE to decode this model's latents");
  const int image_channels = vae ? vae->info.config.out_channels : info.config.in_channels;
  const int pixels_per_unit = vae ? vae->info.config.upscale() : 1;
  if (images) settings.output_template = output_template;
  BatchRun run(generator, entries, settings, device.str());  // every usage error before any file is written

  // Every check on what the run writes comes before the compute.
  std::vector<RunFile> outputs;
  std::vector<std::filesystem::path> image_paths;
  for (const BatchItem& item : run.items()) {
    if (item.path.empty()) continue;
    image_paths.push_back(item.path);
    if (item.clip && item.status != ItemStatus::Failed) {  // a clip's container and its output, as the writer checks
      const io::VideoFormat format = io::video_format_for(item.path, o.format);
      io::check_video_output(item.path, format, item.record["frames"].get<int>(),
                             item.record["width"].get<int>() * pixels_per_unit,
                             item.record["height"].get<int>() * pixels_per_unit, image_channels, o.fps);
      if (format == io::VideoFormat::PngFrames) continue;  // a folder: not one of the files below
    }
    outputs.push_back({item.path, (item.clip ? "clip " : "image ") + std::to_string(item.index)});
  }
  outputs.insert(outputs.end(), {{o.grid, "--grid"}, {o.save_latents, "--save-latents"},
                                 {o.save_trajectory, "--save-trajectory"}, {manifest, "the manifest"}});
  check_run_files(outputs, {{model, "the model"},
                            {o.prompt_file == "-" ? "" : o.prompt_file, "the prompt file"},
                            {o.from, "the --from image"},
                            {o.init_noise, "the initial noise"},
                            {o.config, "the --config file"},
                            {vae_path, "the VAE"}});
  const BatchItem* failed = nullptr;
  for (const BatchItem& item : run.items())
    if (!failed && item.status == ItemStatus::Failed) failed = &item;
  if (failed && (!o.save_latents.empty() || !o.save_trajectory.empty()))
    throw Error(ErrorKind::Usage, "--save-latents and --save-trajectory need every image of the run, and one cannot "
                                  "be made: " + failed->error);
  if (!o.grid.empty()) {  // sizes as recorded: a request's 0 stands for the model's own size
    const BatchItem* first = nullptr;
    const auto size = [](const BatchItem& item) { return item.record["width"].dump() + "x" + item.record["height"].dump(); };
    for (const BatchItem& item : run.items()) {
      if (item.status == ItemStatus::Failed) continue;
      if (!first) first = &item;
      if (size(item) != size(*first))
        throw Error(ErrorKind::Usage, "--grid needs images of one size, and this run mixes " + size(*first) + " and " +
                                          size(item));
    }
  }
  std::set<std::filesystem::path> folders_checked;
  for (const auto& path : image_paths)  // a frames folder's place is probed with a file beside it
    if (folders_checked.insert(path.parent_path()).second)
      check_writable(std::filesystem::is_directory(path) ? path.parent_path() / (path.filename().string() + ".probe")
                                                          : path);
  for (const std::string& extra : {o.save_latents, o.save_trajectory, o.grid, manifest.string()})
    if (!extra.empty()) check_writable(extra);
  if (o.resume) {
    const int stale = io::AtomicFile::remove_stale(image_paths);
    if (stale > 0) log::info(c10::str("removed ", stale, " temporary file(s) an interrupted run left behind"));
  }
  if (rendezvous) rendezvous->barrier("ready");  // every process has checked what exists before any writes
  const bool lead = dist_env.rank == 0;           // reports, and writes the manifest and the grid
  if (!lead) manifest.clear();
  if (!run.items().empty() && run.items().front().status != ItemStatus::Failed) {
    const nlohmann::json& first = run.items().front().record;
    log::debug(c10::str(run.items().size(), " image(s), ", settings.sampler.name, " ", settings.sampler.steps,
                        " steps, cfg ", format_number(settings.guidance.scale), ", schedule ",
                        first["schedule"].get<std::string>(), ": ", format_number(first["gflops"].get<double>()),
                        " GFLOPs per image"));
    log::debug("GFLOPs per step: " + format_numbers(first["gflops_per_step"].get<std::vector<double>>()));
  }

  for (const BatchItem& item : run.items())  // unusable prompt-file lines: reported (once), the others still run
    if (lead && item.status == ItemStatus::Failed) log::error(item.error);
  if (!replayed.model_sha256.empty() && replayed.model_sha256 != info.sha256)
    log::warn(o.from + " was made with another model file (sha256 " + replayed.model_sha256.substr(0, 12) +
              "...): it will differ");
  if (!replayed.vae_sha256.empty() && settings.decode && replayed.vae_sha256 != settings.vae_record.value("sha256", std::string()))
    log::warn(o.from + " was decoded with another VAE file (sha256 " + replayed.vae_sha256.substr(0, 12) +
              "...): it will differ");
  ProgressDisplay display(lead ? progress_mode : ProgressMode::None);
  auto last_manifest = std::chrono::steady_clock::now();
  if (pair && settings.guidance.scale == 1.0 && lead)
    log::warn("--cfg-parallel with cfg scale 1: the images are unguided, and both processes of a pair make the same");
  BatchSummary summary = run.run(
      [&] { return pair ? pair->either(interrupt_count() >= 1) : interrupt_count() >= 1; },  // a pair stops together
      [] { return interrupt_count() >= 2; },
      [&](const BatchItem& item) {
        if (settings.partner) return;  // its pair's first process reports
        if (item.status == ItemStatus::Ok && !item.path.empty()) display.print_line(stdout, item.path.string());
        if (item.status == ItemStatus::Failed) display.print_line(stderr, "error: " + item.error);
        if (!manifest.empty() && std::chrono::steady_clock::now() - last_manifest > std::chrono::seconds(2)) {
          run.write_manifest(manifest);  // a run killed outright still leaves a recent manifest
          last_manifest = std::chrono::steady_clock::now();
        }
      },
      [&](const Progress& p) { display.update(p); });
  display.finish();
  std::fflush(stdout);
  if (rendezvous) {  // the other processes' items, for the manifest and the counts
    const auto states = rendezvous->gather("items", run.shard_states(), [] { return interrupt_count() >= 1; });
    for (size_t r = 1; r < states.size(); ++r)
      if (states[r]) run.adopt(*states[r]);
    if (lead) {
      const double seconds = summary.seconds;
      summary = run.summary();
      summary.seconds = seconds;
    }
  }
  if (!manifest.empty()) run.write_manifest(manifest);
  if (!summary.runtime_error.empty()) throw Error(ErrorKind::Runtime, summary.runtime_error);

  const bool interrupted = interrupt_count() > 0;
  if (!interrupted) {
    if (!o.save_latents.empty()) {
      const BatchItem& first = run.items().front();
      io::save_tensors(o.save_latents, {{"latents", clips ? run.frames() : run.frames().select(1, 0)}},
                       {{"ditgen.record", first.record.dump()}});
      std::printf("%s\n", o.save_latents.c_str());
    }
    if (!o.save_trajectory.empty()) {
      write_trajectory_video(o.save_trajectory, run.trajectory(), 8);
      std::printf("%s\n", o.save_trajectory.c_str());
    }
    if (!o.grid.empty() && lead) {  // images: a near-square sheet; clips: a row of frames each
      std::vector<at::Tensor> shown;  // [C, H, W] an image, [F, C, H, W] a clip
      for (const BatchItem& item : run.items()) {
        // Read back: images of an earlier run, of another process, and a latent model's (kept frames are latents).
        if (item.status == ItemStatus::Skipped ||
            (item.status == ItemStatus::Ok && (!pixel_model || item.shard != settings.shard)))
          shown.push_back(clips ? frames_from_clip(io::read_video(item.path), image_channels)
                                : frame_from_image(io::read_png(item.path)));
        else if (item.status == ItemStatus::Ok)
          shown.push_back(clips ? run.clip(item.index) : run.frame(item.index));
      }
      if (!shown.empty()) {
        io::write_png(o.grid, clips ? tile_images(at::cat(shown), static_cast<int>(shown.front().size(0)))
                                    : contact_sheet(at::stack(shown)));
        std::printf("%s\n", o.grid.c_str());
      }
    }
  }
  const int total = static_cast<int>(run.items().size());
  if (lead && (!o.prompt_file.empty() || summary.failed || summary.skipped || interrupted))
    log::info(c10::str(total, " image(s): ", summary.ok, " generated, ", summary.skipped, " already complete, ",
                       summary.failed, " failed, ", summary.cancelled, " not run, in ",
                       format_seconds(summary.seconds),
                       manifest.empty() ? std::string() : "; manifest " + manifest.string()));
  if (interrupted) {
    log::warn("interrupted: finished images are kept; run again with --resume" +
              (seed ? std::string() : " -s " + std::to_string(settings.seed)) + " to finish");
    return kInterruptedExitCode;
  }
  return summary.failed ? exit_code(ErrorKind::Partial) : 0;
}

}  // namespace

Command add_generate_command(CLI::App& root) {
  auto o = std::make_shared<GenerateOptions>();
  CLI::App* app = root.add_subcommand("generate", "Generate images from prompts (sentences, or class names or ids)");
  const std::string prompts = "Prompts", model = "Model and device", sampling = "Sampling", output = "Output";
  app->add_option("prompts", o->prompts,
                  "Prompts: a sentence each for a text model (quote it; words it does not know are ignored with a "
                  "warning), a class name (case-insensitive) or id for a class model")
      ->group(prompts);
  app->add_option("-p,--prompt", o->prompts, "A prompt (repeatable; same as a positional prompt)")->group(prompts);
  app->add_option("-f,--prompt-file", o->prompt_file,
                  "Prompts from a file ('-' = stdin): one per line, '#' comments; or JSON lines with prompt, "
                  "negative, seed, steps, cfg, size, n, schedule (docs/BATCH.md)")
      ->group(prompts);
  app->add_option("--negative", o->negative,
                  "Negative prompt: the sentence or class the guidance steers away from (default: the null "
                  "condition, the empty prompt)")
      ->group(prompts);
  app->add_option("--from", o->from,
                  "Replay the run recorded in a PNG ditgen wrote (flags given beside it win)")
      ->group(prompts);
  app->add_option("--config", o->config,
                  "YAML file of defaults: option names without dashes -> values (flags > env > config)")
      ->group(prompts);
  app->add_option("-m,--model", o->model, "Model file (.safetensors); default: the shipped text-to-image model (models/scenes-dit)")
      ->envname("DITGEN_MODEL")
      ->group(model);
  app->add_option("--device", o->device, "auto, cpu, cuda or cuda:N")
      ->capture_default_str()
      ->envname("DITGEN_DEVICE")
      ->group(model);
  app->add_option("--dtype", o->dtype, "auto (bf16 on CUDA, fp32 on CPU), fp32, bf16 or fp16")
      ->capture_default_str()
      ->group(model);
  app->add_option("--vae", o->vae,
                  "VAE file (a Stable Diffusion AutoencoderKL, docs/VAE.md) that decodes a latent model's outputs into "
                  "RGB images; default: the one the model file names, if any")
      ->group(model);
  app->add_option("--vae-tile", o->vae_tile,
                  "VAE decoding: auto (whole images when they fit in memory, else tiles), off (whole), or a tile size N "
                  "in latents (8..1024; neighbours overlap N/4, blended linearly)")
      ->capture_default_str()
      ->group(model);
  app->add_flag("--merge-lora", o->merge_lora,
                "Flexible LoRA models: merge each patch size's adapters into a weight copy (no extra FLOPs, more memory)")
      ->group(model);
  app->add_option("-s,--seed", o->seed,
                  "Seed of the first image; image i of the run uses seed + i (default or -1: random; --resume: the "
                  "run's, from its manifest)")
      ->group(sampling);
  app->add_option("-n,--num-images", o->num_images, "Images per prompt (1..10000)")->capture_default_str()->group(sampling);
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
  app->add_flag("--any-size", o->any_size,
                "Run at a size the model was not trained for (refused otherwise: such images are mostly noise)")
      ->group(sampling);
  app->add_option("--batch-size", o->batch_size, "Images per forward pass (compatible prompts share it)")
      ->capture_default_str()
      ->group(sampling);
  app->add_flag("--cfg-parallel", o->cfg_parallel,
                "With --nproc-per-node 2 (or any even number of processes): each pair computes an image's "
                "conditional and guidance branches side by side, one each, for lower latency at small batches "
                "(docs/DISTRIBUTED.md)")
      ->group(sampling);
  app->add_flag("--auto-batch", o->auto_batch,
                "Out of GPU memory: halve the batch and go on (every image stays its seed's) instead of stopping "
                "with a message naming a batch size that fits");
  app->add_option("-o,--output", o->output,
                  "Output name template, ending in .png (clips: .mp4, .webm, .gif, or no extension for a folder of "
                  "PNG frames); fields {index} {index:N} {seed} {prompt} {class}; a name ending in / is a folder "
                  "for the default names")
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
  app->add_option("--frames", o->frames,
                  "Frames of each clip (video models; default: the model's own); clips are written as the output "
                  "name says")
      ->group(output);
  app->add_option("--fps", o->fps, "Frames per second of the clips written")->capture_default_str()->group(output);
  app->add_option("--format", o->format,
                  "Clip container: mp4 (H.264), webm (VP9), gif, or png (a folder of PNG frames, for a name without "
                  "an extension); default: the output name's")
      ->group(output);
  app->add_option("--init-noise", o->init_noise, "Initial noise: safetensors file with 'noise' [N, C, H, W]")
      ->group(output);
  app->add_option("--save-latents", o->save_latents, "Write the final samples as safetensors ('latents'; .safetensors)")
      ->group(output);
  app->add_option("--save-trajectory", o->save_trajectory, "Write the denoising trajectory as an H.264 MP4 (.mp4)")
      ->group(output);
  return {app, [o, app] { return run_generate(*app, *o); }};
}

}  // namespace ditgen::cli
