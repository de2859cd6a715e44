#include "ditgen/train/train_config.h"

#include <algorithm>
#include <array>
#include <utility>

#include <yaml-cpp/yaml.h>

#include "ditgen/core/error.h"
#include "ditgen/io/yaml_json.h"

namespace ditgen::train {

namespace {

constexpr std::array<std::pair<LrSchedule, const char*>, 2> kLrSchedules{
    {{LrSchedule::Constant, "constant"}, {LrSchedule::Cosine, "cosine"}}};
constexpr std::array<std::pair<SparseGrids, const char*>, 3> kSparseGrids{
    {{SparseGrids::Uniform, "uniform"}, {SparseGrids::Timestep, "timestep"}, {SparseGrids::TimestepBatch, "timestep-batch"}}};
constexpr std::array<std::pair<at::ScalarType, const char*>, 2> kSaveDtypes{{{at::kFloat, "fp32"}, {at::kBFloat16, "bf16"}}};

template <typename Enum, size_t N>
const char* name_of(Enum value, const std::array<std::pair<Enum, const char*>, N>& words) {
  for (const auto& [v, word] : words)
    if (v == value) return word;
  return "?";
}

// `setting` names the config key in the message: "lr_schedule must be constant or cosine".
template <typename Enum, size_t N>
Enum parse_word(const std::string& word, const std::array<std::pair<Enum, const char*>, N>& words,
                const std::string& setting) {
  std::string choices;
  for (size_t i = 0; i < N; ++i) {
    if (word == words[i].second) return words[i].first;
    choices += (i == 0 ? "" : i + 1 == N ? " or " : ", ") + std::string(words[i].second);
  }
  throw Error(ErrorKind::Input, setting + " must be " + choices);
}

void require_known_keys(const YAML::Node& map, const std::vector<std::string>& known, const std::string& what) {
  for (const auto& kv : map)
    if (std::find(known.begin(), known.end(), kv.first.as<std::string>()) == known.end())
      throw Error(ErrorKind::Input, "unknown " + what + "setting '" + kv.first.as<std::string>() + "'");
}

FlexibleTraining read_flexible(const YAML::Node& f) {
  if (!f.IsMap()) throw Error(ErrorKind::Input, "flexible must be a mapping");
  require_known_keys(f, {"patch_sizes", "mode", "underlying_patch", "lora_rank", "lora_alpha", "train_patches"},
                     "flexible ");
  FlexibleTraining ft;
  ft.flex.patch_sizes = f["patch_sizes"].as<std::vector<int>>(std::vector<int>{});
  ft.flex.mode = f["mode"].as<std::string>(ft.flex.mode);
  ft.flex.underlying_patch = f["underlying_patch"].as<int>(ft.flex.underlying_patch);
  ft.flex.lora_rank = f["lora_rank"].as<int>(ft.flex.lora_rank);
  ft.flex.lora_alpha = f["lora_alpha"].as<double>(ft.flex.lora_alpha);
  ft.train_patches = f["train_patches"].as<std::vector<int>>(std::vector<int>{});
  if (ft.flex.patch_sizes.empty()) throw Error(ErrorKind::Input, "flexible needs patch_sizes");
  return ft;
}

VideoTraining read_video(const YAML::Node& v) {
  if (!v.IsMap()) throw Error(ErrorKind::Input, "video must be a mapping");
  require_known_keys(v, {"frames", "window_frames", "still_share", "noise_correlation"}, "video ");
  VideoTraining t;
  t.frames = v["frames"].as<int>(t.frames);
  t.window_frames = v["window_frames"].as<int>(t.window_frames);
  t.still_share = v["still_share"].as<double>(t.still_share);
  if (v["noise_correlation"]) t.noise_correlation = v["noise_correlation"].as<double>();
  return t;
}

QuantizedTraining read_quantization(const YAML::Node& q) {
  if (!q.IsMap()) throw Error(ErrorKind::Input, "quantization must be a mapping");
  require_known_keys(q, {"weights", "acts"}, "quantization ");
  QuantizedTraining t;
  t.weight_bits = q["weights"].as<int>(t.weight_bits);
  if (q["acts"]) t.activations = quant::parse_activation_mode(q["acts"].as<std::string>(), ErrorKind::Input);
  if (t.activations == quant::ActivationMode::StaticPerTensor)
    throw Error(ErrorKind::Input, "quantization: training takes acts dynamic or none (static activations are "
                                  "calibrated by `ditgen quantize --acts static`)");
  return t;
}

data::SubjectOptions read_subject(const YAML::Node& q) {
  if (!q.IsMap()) throw Error(ErrorKind::Input, "subject must be a mapping");
  require_known_keys(q, {"index", "word", "renderings", "prior_share"}, "subject ");
  data::SubjectOptions o;
  o.subject = q["index"].as<int64_t>(o.subject);
  o.word = q["word"].as<std::string>(o.word);
  o.renderings = q["renderings"].as<int>(o.renderings);
  o.prior_share = q["prior_share"].as<double>(o.prior_share);
  try {
    data::check_subject_options(o);
  } catch (const Error& e) {
    throw Error(ErrorKind::Input, e.what());
  }
  return o;
}

IntLoRATraining read_intlora(const YAML::Node& q) {
  if (!q.IsMap()) throw Error(ErrorKind::Input, "intlora must be a mapping");
  require_known_keys(q, {"kind", "rank", "alpha"}, "intlora ");
  IntLoRATraining t;
  const std::string kind = q["kind"].as<std::string>("mul");
  if (kind != "mul" && kind != "shift") throw Error(ErrorKind::Input, "intlora.kind must be mul or shift, not " + kind);
  t.kind = kind == "mul" ? quant::IntLoRAKind::Mul : quant::IntLoRAKind::Shift;
  t.rank = q["rank"].as<int>(t.rank);
  t.alpha = q["alpha"].as<double>(t.rank);
  return t;
}

ProxyTraining read_proxy(const YAML::Node& q) {
  if (!q.IsMap()) throw Error(ErrorKind::Input, "proxy must be a mapping");
  require_known_keys(q, {"windows", "proxy_split", "depth", "adaln"}, "proxy ");
  if (!q["windows"]) throw Error(ErrorKind::Input, "proxy needs windows");
  ProxyTraining t;
  t.layout.windows = q["windows"].as<int>();
  t.layout.proxy_split = q["proxy_split"].as<int>(t.layout.proxy_split);
  t.depth = q["depth"].as<int>(t.depth);
  const std::string adaln = q["adaln"].as<std::string>("single");
  if (adaln != "single" && adaln != "per_block")
    throw Error(ErrorKind::Input, "proxy.adaln must be single or per_block, not " + adaln);
  t.layout.adaln_single = adaln == "single";
  return t;
}

SparseConfig read_sparse(const YAML::Node& q) {
  if (!q.IsMap()) throw Error(ErrorKind::Input, "sparse must be a mapping");
  static const std::vector<std::string> keys{"pooling_blocks", "modules", "groups", "min_grid", "max_grid"};
  require_known_keys(q, keys, "sparse ");
  for (const auto& key : keys)
    if (!q[key]) throw Error(ErrorKind::Input, "sparse needs " + key);
  SparseConfig sc;
  sc.pooling_blocks = q["pooling_blocks"].as<int>();
  sc.modules = q["modules"].as<int>();
  const auto groups = q["groups"].as<std::vector<int>>();
  if (groups.size() != 4 || groups[0] != 1 || groups[2] != 1)
    throw Error(ErrorKind::Input, "sparse.groups must be [1, semantic blocks, 1, dense blocks]");
  sc.semantic = groups[1];
  sc.dense = groups[3];
  sc.min_grid = q["min_grid"].as<int>();
  sc.max_grid = q["max_grid"].as<int>();
  return sc;
}

SamplerDefaults read_sampler_defaults(const YAML::Node& s) {
  SamplerDefaults d;
  d.sampler = s["sampler"].as<std::string>(d.sampler);
  d.steps = s["steps"].as<int>(d.steps);
  d.cfg_scale = s["cfg_scale"].as<double>(d.cfg_scale);
  d.cfg_channels = s["cfg_channels"].as<int>(d.cfg_channels);
  d.schedule = s["schedule"].as<std::string>(d.schedule);
  return d;
}

// The settings of `y` (a config read from `path`); errors without the path, which the caller adds.
TrainConfig read_config(const YAML::Node& y, const std::filesystem::path& path) {
  if (!y.IsMap()) throw Error(ErrorKind::Input, "expected a mapping of training settings");
  require_known_keys(y, {"model", "data_dir", "output", "steps", "batch_size", "lr", "warmup_steps", "lr_schedule",
                         "weight_decay", "betas", "grad_clip", "ema_decay", "seed", "log_every", "sample_every",
                         "checkpoint_every", "bf16", "device", "freeze", "lora", "teacher", "name",
                         "sampler_defaults", "save_dtype", "flexible", "sparse", "sparse_grids", "scenes", "proxy",
                         "video", "quantization", "intlora", "subject"},
                     "");
  const std::filesystem::path base = path.parent_path();
  auto rel = [&](const std::string& p) {
    if (p.empty() || std::filesystem::path(p).is_absolute()) return std::filesystem::path(p);
    // Registry names (DiT-S/2) are not paths.
    if (!std::filesystem::exists(base / p) && official_configs().count(p)) return std::filesystem::path(p);
    return base / p;
  };
  TrainConfig c;
  if (!y["model"]) throw Error(ErrorKind::Input, "'model' is required");
  c.model = rel(y["model"].as<std::string>()).string();
  if (y["data_dir"]) c.data_dir = rel(y["data_dir"].as<std::string>());
  // Unlike inputs, the output folder is relative to where ditgen runs.
  c.output = y["output"] ? y["output"].as<std::string>() : "runs/" + path.stem().string();
  c.steps = y["steps"].as<int64_t>(c.steps);
  c.scenes = y["scenes"].as<int64_t>(c.scenes);
  c.batch_size = y["batch_size"].as<int>(c.batch_size);
  c.lr = y["lr"].as<double>(c.lr);
  c.warmup_steps = y["warmup_steps"].as<int64_t>(c.warmup_steps);
  if (y["lr_schedule"]) c.lr_schedule = parse_lr_schedule(y["lr_schedule"].as<std::string>());
  c.weight_decay = y["weight_decay"].as<double>(c.weight_decay);
  if (y["betas"]) {
    c.beta1 = y["betas"][0].as<double>();
    c.beta2 = y["betas"][1].as<double>();
  }
  c.grad_clip = y["grad_clip"].as<double>(c.grad_clip);
  c.ema_decay = y["ema_decay"].as<double>(c.ema_decay);
  c.seed = y["seed"].as<uint64_t>(c.seed);
  c.log_every = y["log_every"].as<int64_t>(c.log_every);
  c.sample_every = y["sample_every"].as<int64_t>(c.sample_every);
  c.checkpoint_every = y["checkpoint_every"].as<int64_t>(c.checkpoint_every);
  c.bf16 = y["bf16"].as<bool>(c.bf16);
  c.device = y["device"].as<std::string>(c.device);
  c.freeze = y["freeze"].as<std::vector<std::string>>(std::vector<std::string>{});
  if (const YAML::Node l = y["lora"])
    c.lora = LoraOptions{l["targets"].as<std::vector<std::string>>(), l["rank"].as<int>(LoraOptions{}.rank),
                         l["alpha"].as<double>(LoraOptions{}.alpha)};
  if (y["teacher"]) c.teacher = rel(y["teacher"].as<std::string>()).string();
  if (y["flexible"]) c.flexible = read_flexible(y["flexible"]);
  if (y["sparse"]) c.sparse = read_sparse(y["sparse"]);
  if (y["proxy"]) c.proxy = read_proxy(y["proxy"]);
  if (y["video"]) c.video = read_video(y["video"]);
  if (y["quantization"]) c.quantization = read_quantization(y["quantization"]);
  if (y["intlora"]) c.intlora = read_intlora(y["intlora"]);
  if (y["subject"]) c.subject = read_subject(y["subject"]);
  if (y["sparse_grids"]) c.sparse_grids = parse_sparse_grids(y["sparse_grids"].as<std::string>());
  c.name = y["name"].as<std::string>("");
  if (y["save_dtype"]) c.save_dtype = parse_word(y["save_dtype"].as<std::string>(), kSaveDtypes, "save_dtype");
  if (y["sampler_defaults"]) {
    c.sampler_defaults = read_sampler_defaults(y["sampler_defaults"]);
    c.sampler_defaults_set = true;
  }
  return c;
}

// The checks of values each setting takes alone and of settings that exclude each other.
void check(const TrainConfig& c) {
  auto bad = [&](bool cond, const std::string& what) {
    if (cond) throw Error(ErrorKind::Input, what);
  };
  bad(c.steps < 1, "steps must be >= 1");
  bad(c.scenes < 1 || c.scenes > (int64_t{1} << 32), "scenes must be in 1..4294967296");
  bad(c.batch_size < 1 || c.batch_size > 65536, "batch_size must be in 1..65536");
  bad(!(c.lr > 0) || c.lr > 1, "lr must be in (0, 1]");
  bad(c.warmup_steps < 0, "warmup_steps must be >= 0");
  bad(c.weight_decay < 0, "weight_decay must be >= 0");
  bad(c.grad_clip < 0, "grad_clip must be >= 0");
  bad(c.ema_decay < 0 || c.ema_decay >= 1, "ema_decay must be in [0, 1)");
  bad(c.log_every < 1, "log_every must be >= 1");
  bad(c.sample_every < 0 || c.checkpoint_every < 0, "sample_every and checkpoint_every must be >= 0");
  bad(c.lora && (c.lora->rank < 1 || c.lora->targets.empty()), "lora needs targets and a rank >= 1");
  bad(c.flexible && c.lora, "flexible fine-tuning does not take lora (mode: lora brings its own adapters)");
  bad(c.flexible && c.flexible->flex.lora() && !c.teacher.empty(),
      "lora-mode flexible fine-tuning distills from the model itself at its own patch size; drop teacher");
  bad(c.video && (c.video->frames < 2 || c.video->frames > 256), "video.frames must be in 2..256");
  bad(c.video && (c.video->window_frames < 1 || c.video->window_frames > 64), "video.window_frames must be in 1..64");
  bad(c.video && c.video->noise_correlation && !(*c.video->noise_correlation >= 0 && *c.video->noise_correlation < 1),
      "video.noise_correlation must be in [0, 1)");
  bad(c.video && !(c.video->still_share >= 0 && c.video->still_share < 1), "video.still_share must be in [0, 1)");
  bad(c.video && (c.flexible || c.sparse), "video models are dense DiTs or PT-DiTs: drop flexible and sparse");
  bad(c.proxy && (c.flexible || c.sparse), "a PT-DiT is neither flexible nor sparse: drop flexible and sparse");
  bad(c.proxy && (c.proxy->layout.windows < 1 || c.proxy->layout.windows > 64), "proxy.windows must be in 1..64");
  bad(c.proxy && (c.proxy->layout.proxy_split < 1 || c.proxy->layout.proxy_split > 16),
      "proxy.proxy_split must be in 1..16");
  bad(c.proxy && (c.proxy->depth < 0 || c.proxy->depth > 256), "proxy.depth must be in 0..256 (0: the dense model's)");
  bad(c.quantization && c.quantization->weight_bits != 4 && c.quantization->weight_bits != 8,
      "quantization.weights must be 4 or 8");
  bad(c.intlora && !c.quantization, "intlora adapts a quantized model: add a quantization section");
  bad(c.intlora && (c.intlora->rank < 1 || !(c.intlora->alpha > 0)), "intlora needs a rank >= 1 and an alpha > 0");
  bad(c.quantization && c.intlora && c.lora, "take intlora or lora adapters, not both");
  bad(c.quantization && !c.intlora && !c.lora,
      "a quantized model trains adapters only: add an intlora or a lora section (or drop quantization)");
  bad(c.quantization && c.flexible, "flexible fine-tuning does not take quantization");
  bad(c.subject && (c.video || c.flexible || c.sparse), "subject fine-tuning trains an image text model: drop video, flexible and sparse");
  bad(c.subject && c.subject->subject < 0, "subject.index must be >= 0");
  bad(c.flexible && c.sparse_grids != SparseGrids::Uniform,
      "flexible fine-tuning of a sparse model draws its grids uniformly (sparse_grids: uniform)");
}

}  // namespace

const char* lr_schedule_name(LrSchedule schedule) { return name_of(schedule, kLrSchedules); }
const char* sparse_grids_name(SparseGrids grids) { return name_of(grids, kSparseGrids); }
LrSchedule parse_lr_schedule(const std::string& word) { return parse_word(word, kLrSchedules, "lr_schedule"); }
SparseGrids parse_sparse_grids(const std::string& word) { return parse_word(word, kSparseGrids, "sparse_grids"); }

nlohmann::json TrainConfig::to_json() const {
  nlohmann::json j{{"model", model},         {"data_dir", data_dir.string()}, {"output", output.string()},
                   {"steps", steps},         {"batch_size", batch_size},      {"lr", lr},
                   {"warmup_steps", warmup_steps}, {"lr_schedule", lr_schedule_name(lr_schedule)},
                   {"weight_decay", weight_decay}, {"betas", {beta1, beta2}}, {"grad_clip", grad_clip},
                   {"ema_decay", ema_decay}, {"seed", seed},                  {"bf16", bf16},
                   {"freeze", freeze},       {"teacher", teacher},            {"save_dtype", name_of(save_dtype, kSaveDtypes)},
                   {"scenes", scenes}};
  if (lora) j["lora"] = {{"targets", lora->targets}, {"rank", lora->rank}, {"alpha", lora->alpha}};
  if (flexible)
    j["flexible"] = {{"patch_sizes", flexible->flex.patch_sizes}, {"mode", flexible->flex.mode},
                     {"underlying_patch", flexible->flex.underlying_patch}, {"lora_rank", flexible->flex.lora_rank},
                     {"lora_alpha", flexible->flex.lora_alpha}, {"train_patches", flexible->train_patches}};
  if (sparse)
    j["sparse"] = {{"pooling_blocks", sparse->pooling_blocks}, {"modules", sparse->modules},
                   {"groups", {1, sparse->semantic, 1, sparse->dense}}, {"min_grid", sparse->min_grid},
                   {"max_grid", sparse->max_grid}};
  if (proxy)
    j["proxy"] = {{"windows", proxy->layout.windows}, {"proxy_split", proxy->layout.proxy_split},
                  {"depth", proxy->depth}, {"adaln", proxy->layout.adaln_single ? "single" : "per_block"}};
  if (video)
    j["video"] = {{"frames", video->frames}, {"window_frames", video->window_frames},
                  {"still_share", video->still_share}};
  if (video && video->noise_correlation) j["video"]["noise_correlation"] = *video->noise_correlation;
  if (quantization)
    j["quantization"] = {{"weights", quantization->weight_bits},
                         {"acts", quant::activation_mode_name(quantization->activations)}};
  if (subject)
    j["subject"] = {{"index", subject->subject}, {"word", subject->word}, {"renderings", subject->renderings},
                    {"prior_share", subject->prior_share}};
  if (intlora)
    j["intlora"] = {{"kind", intlora->kind == quant::IntLoRAKind::Mul ? "mul" : "shift"},
                    {"rank", intlora->rank}, {"alpha", intlora->alpha}};
  j["sparse_grids"] = sparse_grids_name(sparse_grids);
  return j;
}

TrainConfig load_train_config(const std::filesystem::path& path) {
  const YAML::Node root = io::load_yaml_file(path);  // a bounded regular file; its errors name it
  try {
    TrainConfig c = read_config(root, path);
    check(c);
    return c;
  } catch (const YAML::Exception& e) {
    throw Error(ErrorKind::Input, path.string() + ": " + e.what());
  } catch (const Error& e) {
    throw Error(e.kind(), path.string() + ": " + e.what());
  }
}

}  // namespace ditgen::train
