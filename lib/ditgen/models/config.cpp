#include "ditgen/models/config.h"

#include <algorithm>
#include <cctype>
#include <cstdint>

#include <nlohmann/json.hpp>

#include "ditgen/core/error.h"
#include "ditgen/text/words.h"

namespace ditgen {

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

void require(bool ok, ErrorKind kind, const std::string& what) {
  if (!ok) throw Error(kind, "invalid model config: " + what);
}

// An integer field: a JSON integer within int's range (a float such as 1e300 or 4.5 is refused rather than
// converted, which would be undefined behaviour).
int to_int(const nlohmann::json& v, const std::string& name) {
  require(v.is_number_integer(), ErrorKind::Model, name + " must be an integer");
  const bool fits = v.is_number_unsigned() ? v.get<uint64_t>() <= static_cast<uint64_t>(INT32_MAX)
                                           : v.get<int64_t>() >= INT32_MIN && v.get<int64_t>() <= INT32_MAX;
  require(fits, ErrorKind::Model, name + " is out of range");
  return static_cast<int>(v.get<int64_t>());
}

int int_field(const nlohmann::json& object, const std::string& key, const std::string& prefix = "") {
  return to_int(object.at(key), prefix + key);
}

int int_field_or(const nlohmann::json& object, const std::string& key, int fallback, const std::string& prefix = "") {
  return object.contains(key) ? to_int(object.at(key), prefix + key) : fallback;
}

std::vector<int> int_list(const nlohmann::json& v, const std::string& name) {
  require(v.is_array() && v.size() <= 64, ErrorKind::Model, name + " must be a list of integers");
  std::vector<int> out;
  for (const auto& item : v) out.push_back(to_int(item, name));
  return out;
}

void validate_text(const TextConfig& t, ErrorKind kind) {
  require(t.vocabulary.size() <= 65536, kind, "text.vocabulary holds at most 65536 words");
  std::vector<std::string> sorted = t.vocabulary;
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 0; i < sorted.size(); ++i) {
    require(text::is_vocabulary_word(sorted[i]), kind, "text.vocabulary words are 1..32 lowercase letters, digits, '-' or '");
    require(i == 0 || sorted[i] != sorted[i - 1], kind, "text.vocabulary repeats '" + sorted[i] + "'");
  }
  require(t.max_tokens >= 2 && t.max_tokens <= 512, kind, "text.max_tokens must be in 2..512");
  require(t.width >= 1 && t.width <= 4096, kind, "text.width must be in 1..4096");
  require(t.heads >= 1 && t.width % t.heads == 0, kind, "text.heads must divide text.width");
  require(t.layers >= 0 && t.layers <= 32, kind, "text.layers must be in 0..32");
}

}  // namespace

void DiTConfig::validate(ErrorKind kind) const {
  require(depth >= 1 && depth <= 256, kind, "depth must be in 1..256");
  require(hidden_size >= 1 && hidden_size <= 16384, kind, "hidden_size must be in 1..16384");
  require(num_heads >= 1 && hidden_size % num_heads == 0, kind, "num_heads must divide hidden_size");
  require(hidden_size % 4 == 0, kind, "hidden_size must be a multiple of 4 (2D sin-cos positions)");
  require(patch_size >= 1 && patch_size <= 64, kind, "patch_size must be in 1..64");
  require(mlp_ratio > 0 && mlp_ratio <= 16, kind, "mlp_ratio must be in (0, 16]");
  require(in_channels >= 1 && in_channels <= 64, kind, "in_channels must be in 1..64");
  require(input_height >= patch_size && input_width >= patch_size && input_height % patch_size == 0 &&
              input_width % patch_size == 0 && input_height <= 8192 && input_width <= 8192,
          kind, "input_size must be positive multiples of patch_size");
  require(input_frames >= 1 && input_frames <= 1024, kind, "input_frames must be in 1..1024");
  require(proxy.window_frames >= 1 && proxy.window_frames <= 64, kind, "proxy.window_frames must be in 1..64");
  if (video()) {
    require(!sparse.sparse() && !ssm.ssm() && !flex.flexible(), kind,
            "a video model (input_frames > 1) is a dense DiT or a PT-DiT");
    require(!proxy.proxy() || input_frames % proxy.window_frames == 0, kind,
            "proxy.window_frames must divide input_frames");
  }
  require(frame_noise_correlation >= 0 && frame_noise_correlation < 1, kind,
          "frame_noise_correlation must be in [0, 1)");
  require(frame_noise_correlation == 0 || video(), kind,
          "frame_noise_correlation is for video models (input_frames > 1)");
  if (text.enabled()) {
    require(num_classes == 0, kind, "a text model has num_classes 0");
    validate_text(text, kind);
  } else {
    require(num_classes >= 1 && num_classes <= 1000000, kind, "num_classes must be in 1..1000000");
  }
  require(class_dropout_prob >= 0 && class_dropout_prob < 1, kind, "class_dropout_prob must be in [0, 1)");
  require(diffusion_steps >= 1 && diffusion_steps <= 100000, kind, "diffusion_steps must be in 1..100000");
  require(beta_schedule == "linear", kind, "beta_schedule must be \"linear\"");
  require(!(objective == Objective::Flow && learn_sigma), kind, "flow models do not learn sigma");
  if (sparse.sparse() || sparse.pooling_blocks != 0) {
    const SparseConfig& q = sparse;
    require(q.modules >= 1 && q.modules <= 64, kind, "sparse.modules must be in 1..64");
    require(q.pooling_blocks >= 0 && q.semantic >= 0 && q.dense >= 0, kind,
            "sparse block counts must not be negative");
    require(q.pooling_blocks + q.modules * q.blocks_per_module() <= depth, kind,
            "sparse.pooling_blocks + sparse.modules * (2 + semantic + dense) must not exceed depth");
    const int grid_h = input_height / patch_size, grid_w = input_width / patch_size;
    require(q.min_grid >= 1 && q.min_grid <= q.max_grid && q.max_grid <= std::min(grid_h, grid_w), kind,
            "sparse grids must satisfy 1 <= min_grid <= max_grid <= the token grid (" + std::to_string(grid_h) +
                "x" + std::to_string(grid_w) + ")");
    require(!flex.lora(), kind, "a sparse layout does not combine with lora-mode flexible patches");
  }
  if (proxy.proxy() || proxy.proxy_split != 1) {
    require(proxy.windows >= 1 && proxy.windows <= 64, kind, "proxy.windows must be in 1..64");
    require(proxy.proxy_split >= 1 && proxy.proxy_split <= 16, kind, "proxy.proxy_split must be in 1..16");
    require(!sparse.sparse() && !flex.lora(), kind,
            "proxy-token blocks do not combine with a sparse layout or lora-mode flexible patches");
    const int grid_h = input_height / patch_size, grid_w = input_width / patch_size;
    require(grid_h % (proxy.windows * proxy.proxy_split) == 0 && grid_w % (proxy.windows * proxy.proxy_split) == 0,
            kind, "the " + std::to_string(grid_h) + "x" + std::to_string(grid_w) + " token grid of input_size at " +
                      "patch_size must divide into proxy.windows x proxy.proxy_split per side");
  }
  if (ssm.ssm() || ssm.hourglass != 2 || ssm.kernels != "channel") {
    require(ssm.state_size >= 2 && ssm.state_size <= 1024 && ssm.state_size % 2 == 0, kind,
            "ssm.state_size must be even and in 2..1024");
    require(ssm.hourglass >= 1 && ssm.hourglass <= 16, kind, "ssm.hourglass must be in 1..16");
    require(ssm.kernels == "channel" || ssm.kernels == "shared", kind, "ssm.kernels must be channel or shared");
    require(!sparse.sparse() && !proxy.proxy() && !flex.flexible(), kind,
            "DiffuSSM blocks do not combine with sparse layouts, proxy tokens or flexible patches");
    const int tokens = (input_height / patch_size) * (input_width / patch_size);
    require(tokens % ssm.hourglass == 0, kind,
            "the " + std::to_string(tokens) + " tokens of input_size at patch_size must pack by ssm.hourglass");
  }
  if (!flex.flexible()) return;
  require(flex.mode == "shared" || flex.mode == "lora", kind, "flex.mode must be shared or lora");
  require(flex.underlying_patch >= 1 && flex.underlying_patch <= 16, kind, "flex.underlying_patch must be in 1..16");
  require(flex.patch_sizes.size() <= 8, kind, "flex.patch_sizes lists at most 8 sizes");
  for (size_t i = 0; i < flex.patch_sizes.size(); ++i) {
    require(flex.patch_sizes[i] >= 1 && flex.patch_sizes[i] <= 16, kind, "flex.patch_sizes must be in 1..16");
    for (size_t j = 0; j < i; ++j) require(flex.patch_sizes[i] != flex.patch_sizes[j], kind, "flex.patch_sizes repeats a size");
  }
  require(std::find(flex.patch_sizes.begin(), flex.patch_sizes.end(), patch_size) != flex.patch_sizes.end(), kind,
          "flex.patch_sizes must include patch_size");
  require(flex.lora_rank >= 1 && flex.lora_rank <= 1024, kind, "flex.lora_rank must be in 1..1024");
  require(flex.lora_alpha > 0 && flex.lora_alpha <= 1e4, kind, "flex.lora_alpha must be in (0, 10000]");
}

bool DiTConfig::supports_patch(int p) const {
  if (p == 0 || p == patch_size) return true;
  return std::find(flex.patch_sizes.begin(), flex.patch_sizes.end(), p) != flex.patch_sizes.end();
}

std::vector<int> DiTConfig::runnable_patches() const {
  std::vector<int> out{patch_size};
  for (int p : flex.patch_sizes)
    if (p != patch_size) out.push_back(p);
  return out;
}

int DiTConfig::top_blocks() const {
  if (proxy.proxy() || ssm.ssm()) return 0;
  return depth - sparse.pooling_blocks - sparse.modules * sparse.blocks_per_module();
}

int DiTConfig::sparse_grid(int grid) const {
  if (!sparse.sparse()) return 0;
  return grid > 0 ? grid : sparse.max_grid;
}

void DiTConfig::check_token_grid(int grid_h, int grid_w) const {
  if (ssm.ssm() && (int64_t{grid_h} * grid_w) % ssm.hourglass != 0)
    throw Error(ErrorKind::Usage, "a " + std::to_string(grid_h) + "x" + std::to_string(grid_w) +
                                      " token grid does not pack into this DiffuSSM's hourglass: the token count "
                                      "(image side / patch size, squared) must be a multiple of " +
                                      std::to_string(ssm.hourglass));
  if (!proxy.proxy()) return;
  const int unit = proxy.windows * proxy.proxy_split;
  if (grid_h % unit == 0 && grid_w % unit == 0) return;
  throw Error(ErrorKind::Usage, "a " + std::to_string(grid_h) + "x" + std::to_string(grid_w) +
                                    " token grid does not divide into this PT-DiT's " + std::to_string(proxy.windows) +
                                    "x" + std::to_string(proxy.windows) + " windows" +
                                    (proxy.proxy_split > 1 ? " of " + std::to_string(proxy.proxy_split) + "x" +
                                                                 std::to_string(proxy.proxy_split) + " proxies"
                                                           : std::string()) +
                                    ": each side (image side / patch size) must be a multiple of " +
                                    std::to_string(unit) + " (windows are not padded)");
}

void DiTConfig::check_frames(int frames) const {
  if (frames == 1) return;
  if (frames < 1) throw Error(ErrorKind::Usage, "a clip needs at least one frame");
  if (sparse.sparse() || ssm.ssm() || flex.flexible())
    throw Error(ErrorKind::Usage, "this model makes images only: clips run through dense DiT and PT-DiT models");
  if (proxy.proxy() && frames % proxy.window_frames != 0)
    throw Error(ErrorKind::Usage, "this PT-DiT's windows span " + std::to_string(proxy.window_frames) +
                                      " frames: the frame count must be a multiple of " +
                                      std::to_string(proxy.window_frames));
}

const char* objective_name(Objective objective) { return objective == Objective::Eps ? "eps" : "flow"; }
const char* image_space_name(ImageSpace space) { return space == ImageSpace::Pixel ? "pixel" : "latent"; }

nlohmann::json to_json(const DiTConfig& c) {
  nlohmann::json j = {{"architecture", "dit"},
          {"depth", c.depth},
          {"hidden_size", c.hidden_size},
          {"num_heads", c.num_heads},
          {"patch_size", c.patch_size},
          {"mlp_ratio", c.mlp_ratio},
          {"in_channels", c.in_channels},
          {"input_size", {c.input_height, c.input_width}},
          {"num_classes", c.num_classes},
          {"class_dropout_prob", c.class_dropout_prob},
          {"learn_sigma", c.learn_sigma},
          {"objective", objective_name(c.objective)},
          {"diffusion_steps", c.diffusion_steps},
          {"beta_schedule", c.beta_schedule},
          {"image_space", image_space_name(c.image_space)}};
  if (c.flex.flexible())
    j["flex"] = {{"patch_sizes", c.flex.patch_sizes}, {"underlying_patch", c.flex.underlying_patch},
                 {"mode", c.flex.mode}, {"lora_rank", c.flex.lora_rank}, {"lora_alpha", c.flex.lora_alpha}};
  if (c.sparse.sparse())
    j["sparse"] = {{"pooling_blocks", c.sparse.pooling_blocks}, {"modules", c.sparse.modules},
                   {"groups", {1, c.sparse.semantic, 1, c.sparse.dense}}, {"top_blocks", c.top_blocks()},
                   {"min_grid", c.sparse.min_grid}, {"max_grid", c.sparse.max_grid}};
  if (c.video()) j["input_frames"] = c.input_frames;  // absent for images: their files stay as they were
  if (c.frame_noise_correlation > 0) j["frame_noise_correlation"] = c.frame_noise_correlation;
  if (c.proxy.proxy()) j["proxy"] = {{"windows", c.proxy.windows}, {"proxy_split", c.proxy.proxy_split}};
  if (c.proxy.proxy() && c.video()) j["proxy"]["window_frames"] = c.proxy.window_frames;
  if (c.proxy.proxy() && !c.proxy.adaln_single) j["proxy"]["adaln"] = "per_block";  // absent: the paper's
  if (c.ssm.ssm())
    j["ssm"] = {{"state_size", c.ssm.state_size}, {"hourglass", c.ssm.hourglass}, {"kernels", c.ssm.kernels}};
  if (c.text.enabled())
    j["text"] = {{"vocabulary", c.text.vocabulary}, {"max_tokens", c.text.max_tokens}, {"width", c.text.width},
                 {"layers", c.text.layers}, {"heads", c.text.heads}};
  return j;
}

DiTConfig config_from_json(const nlohmann::json& j) {
  DiTConfig c;
  try {
    require(j.is_object(), ErrorKind::Model, "not a JSON object");
    require(j.value("architecture", std::string("dit")) == "dit", ErrorKind::Model,
            "architecture must be \"dit\"");
    c.depth = int_field(j, "depth");
    c.hidden_size = int_field(j, "hidden_size");
    c.num_heads = int_field(j, "num_heads");
    c.patch_size = int_field(j, "patch_size");
    c.mlp_ratio = j.value("mlp_ratio", 4.0);
    c.in_channels = int_field(j, "in_channels");
    const auto& size = j.at("input_size");
    if (size.is_array()) {
      require(size.size() == 2, ErrorKind::Model, "input_size must be [height, width]");
      c.input_height = to_int(size[0], "input_size");
      c.input_width = to_int(size[1], "input_size");
    } else {
      c.input_height = c.input_width = to_int(size, "input_size");
    }
    c.input_frames = int_field_or(j, "input_frames", 1);
    c.frame_noise_correlation = j.value("frame_noise_correlation", 0.0);
    c.num_classes = int_field(j, "num_classes");
    c.class_dropout_prob = j.value("class_dropout_prob", 0.1);
    c.learn_sigma = j.value("learn_sigma", true);
    std::string objective = j.value("objective", std::string("eps"));
    require(objective == "eps" || objective == "flow", ErrorKind::Model, "objective must be eps or flow");
    c.objective = objective == "eps" ? Objective::Eps : Objective::Flow;
    c.diffusion_steps = int_field_or(j, "diffusion_steps", 1000);
    c.beta_schedule = j.value("beta_schedule", std::string("linear"));
    std::string space = j.value("image_space", std::string("latent"));
    require(space == "pixel" || space == "latent", ErrorKind::Model, "image_space must be pixel or latent");
    c.image_space = space == "pixel" ? ImageSpace::Pixel : ImageSpace::Latent;
    if (j.contains("flex")) {
      const auto& f = j.at("flex");
      require(f.is_object(), ErrorKind::Model, "flex must be an object");
      c.flex.patch_sizes = int_list(f.at("patch_sizes"), "flex.patch_sizes");
      require(!c.flex.patch_sizes.empty(), ErrorKind::Model, "flex.patch_sizes must not be empty");
      c.flex.underlying_patch = int_field_or(f, "underlying_patch", 4, "flex.");
      c.flex.mode = f.value("mode", std::string("shared"));
      c.flex.lora_rank = int_field_or(f, "lora_rank", 16, "flex.");
      c.flex.lora_alpha = f.value("lora_alpha", 16.0);
    }
    if (j.contains("sparse")) {
      const auto& q = j.at("sparse");
      require(q.is_object(), ErrorKind::Model, "sparse must be an object");
      c.sparse.pooling_blocks = int_field(q, "pooling_blocks", "sparse.");
      c.sparse.modules = int_field(q, "modules", "sparse.");
      const auto groups = int_list(q.at("groups"), "sparse.groups");
      require(groups.size() == 4 && groups[0] == 1 && groups[2] == 1, ErrorKind::Model,
              "sparse.groups must be [1, semantic blocks, 1, dense blocks]");
      c.sparse.semantic = groups[1];
      c.sparse.dense = groups[3];
      c.sparse.min_grid = int_field(q, "min_grid", "sparse.");
      c.sparse.max_grid = int_field(q, "max_grid", "sparse.");
      require(c.sparse.modules >= 1, ErrorKind::Model, "sparse.modules must be in 1..64");
      if (q.contains("top_blocks"))
        require(int_field(q, "top_blocks", "sparse.") == c.top_blocks(), ErrorKind::Model,
                "sparse.top_blocks must equal depth - pooling_blocks - modules * (2 + semantic + dense)");
    }
    if (j.contains("proxy")) {
      const auto& q = j.at("proxy");
      require(q.is_object(), ErrorKind::Model, "proxy must be an object");
      c.proxy.windows = int_field_or(q, "windows", 8, "proxy.");
      c.proxy.proxy_split = int_field_or(q, "proxy_split", 1, "proxy.");
      c.proxy.window_frames = int_field_or(q, "window_frames", 4, "proxy.");
      if (q.contains("adaln")) {
        const auto& adaln = q.at("adaln");
        require(adaln.is_string() && (adaln == "single" || adaln == "per_block"), ErrorKind::Model,
                "proxy.adaln must be \"single\" or \"per_block\"");
        c.proxy.adaln_single = adaln == "single";
      }
      require(c.proxy.windows >= 1, ErrorKind::Model, "proxy.windows must be in 1..64");
    }
    if (j.contains("ssm")) {
      const auto& q = j.at("ssm");
      require(q.is_object(), ErrorKind::Model, "ssm must be an object");
      c.ssm.state_size = int_field_or(q, "state_size", 64, "ssm.");
      c.ssm.hourglass = int_field_or(q, "hourglass", 2, "ssm.");
      c.ssm.kernels = q.value("kernels", std::string("channel"));
      require(c.ssm.ssm(), ErrorKind::Model, "ssm.state_size must be even and in 2..1024");
    }
    if (j.contains("text")) {
      const auto& q = j.at("text");
      require(q.is_object() && q.contains("vocabulary") && q.at("vocabulary").is_array(), ErrorKind::Model,
              "text must be an object with a vocabulary list");
      require(q.at("vocabulary").size() >= 1 && q.at("vocabulary").size() <= 65536, ErrorKind::Model,
              "text.vocabulary holds 1..65536 words");
      for (const auto& w : q.at("vocabulary")) {
        require(w.is_string(), ErrorKind::Model, "text.vocabulary words must be strings");
        c.text.vocabulary.push_back(w.get<std::string>());
      }
      c.text.max_tokens = int_field_or(q, "max_tokens", 48, "text.");
      c.text.width = int_field_or(q, "width", 128, "text.");
      c.text.layers = int_field_or(q, "layers", 2, "text.");
      c.text.heads = int_field_or(q, "heads", 4, "text.");
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorKind::Model, std::string("invalid model config: ") + e.what());
  }
  c.validate(ErrorKind::Model);
  return c;
}

const std::map<std::string, DiTConfig>& official_configs() {
  static const std::map<std::string, DiTConfig> table = [] {
    struct Size { const char* name; int depth, hidden, heads; };
    const Size sizes[] = {{"S", 12, 384, 6}, {"B", 12, 768, 12}, {"L", 24, 1024, 16}, {"XL", 28, 1152, 16}};
    std::map<std::string, DiTConfig> t;
    for (const Size& s : sizes) {
      for (int patch : {2, 4, 8}) {
        DiTConfig c;
        c.depth = s.depth;
        c.hidden_size = s.hidden;
        c.num_heads = s.heads;
        c.patch_size = patch;
        t.emplace(std::string("DiT-") + s.name + "/" + std::to_string(patch), c);
        if (patch != 2) continue;
        c.flex.patch_sizes = {1, 2, 4, 8};
        t.emplace(std::string("FlexiDiT-") + s.name + "/2", c);
      }
    }
    DiTConfig xl = t.at("DiT-XL/2");
    xl.sparse = {1, 4, 3, 1, 6, 10};
    t.emplace("SparseDiT-XL/2", xl);
    xl.input_height = xl.input_width = 64;
    xl.sparse = {};
    t.emplace("DiT-XL/2-512", xl);
    xl.sparse = {2, 4, 3, 1, 6, 10};
    t.emplace("SparseDiT-XL/2-512", xl);
    DiTConfig pt = t.at("DiT-XL/2");
    pt.proxy.windows = 8;
    t.emplace("PT-DiT-XL/2", pt);
    DiTConfig ssm = t.at("DiT-XL/2");
    ssm.depth = 29;
    ssm.patch_size = 1;
    ssm.mlp_ratio = 4.0 / 3.0;
    ssm.ssm.state_size = 64;
    t.emplace("DiffuSSM-XL", ssm);
    return t;
  }();
  return table;
}

DiTConfig official_config(const std::string& name) {
  std::string names;
  for (const auto& [key, config] : official_configs()) {
    if (lower(key) == lower(name)) return config;
    names += (names.empty() ? "" : ", ") + key;
  }
  throw Error(ErrorKind::Usage, "unknown model name '" + name + "' (known: " + names + ")");
}

}  // namespace ditgen
