#include "ditgen/models/model_file.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "ditgen/io/json_limits.h"
#include "ditgen/io/yaml_json.h"

#include "ditgen/core/device.h"
#include "ditgen/core/did_you_mean.h"
#include "ditgen/core/hash.h"
#include "ditgen/io/safetensors.h"
#include "ditgen/io/tensor_io.h"
#include "ditgen/models/cost.h"
#include "ditgen/quant/quantized_tensors.h"
#include "ditgen/schedule/compute_schedule.h"

namespace ditgen {

namespace {

constexpr const char* kFormatKey = "ditgen.format";
constexpr const char* kNameKey = "ditgen.name";
constexpr const char* kConfigKey = "ditgen.config";
constexpr const char* kClassesKey = "ditgen.class_names";
constexpr const char* kSamplerKey = "ditgen.sampler_defaults";
constexpr const char* kTrainingKey = "ditgen.training";
constexpr const char* kVaeKey = "ditgen.vae";
constexpr const char* kQuantKey = "ditgen.quant";

std::string trim_lower(const std::string& s) {
  auto b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  std::string out = b == std::string::npos ? "" : s.substr(b, e - b + 1);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

SamplerDefaults sampler_defaults_from_json(const nlohmann::json& j) {
  SamplerDefaults d;
  d.sampler = j.value("sampler", d.sampler);
  d.steps = j.value("steps", d.steps);
  d.cfg_scale = j.value("cfg_scale", d.cfg_scale);
  d.cfg_channels = j.value("cfg_channels", d.cfg_channels);
  d.schedule = j.value("schedule", d.schedule);
  return d;
}

}  // namespace

ModelInfo model_info_from_metadata(const io::Metadata& meta, const std::string& where) {
  auto get = [&](const char* key) -> const std::string* {
    auto it = meta.find(key);
    return it == meta.end() ? nullptr : &it->second;
  };
  const std::string* format = get(kFormatKey);
  if (!format) throw Error(ErrorKind::Model, where + ": not a ditgen model (no '" + kFormatKey + "' metadata)");
  if (*format != "1") throw Error(ErrorKind::Model, where + ": unsupported model format version " + *format);
  const std::string* config = get(kConfigKey);
  if (!config) throw Error(ErrorKind::Model, where + ": metadata has no '" + kConfigKey + "'");
  ModelInfo info;
  try {
    info.config = config_from_json(io::parse_json(*config, ErrorKind::Model, kConfigKey));
    if (const std::string* name = get(kNameKey)) info.name = *name;
    if (const std::string* classes = get(kClassesKey)) {
      info.class_names = io::parse_json(*classes, ErrorKind::Model, kClassesKey).get<std::vector<std::string>>();
      if (static_cast<int>(info.class_names.size()) != info.config.num_classes)
        throw Error(ErrorKind::Model, std::to_string(info.class_names.size()) + " class names for " +
                                          std::to_string(info.config.num_classes) + " classes");
    }
    if (const std::string* sampler = get(kSamplerKey)) {
      info.sampler_defaults = sampler_defaults_from_json(io::parse_json(*sampler, ErrorKind::Model, kSamplerKey));
      validate_sampler_defaults(info.sampler_defaults, info.config);
    }
    if (const std::string* training = get(kTrainingKey)) info.training = io::parse_json(*training, ErrorKind::Model, kTrainingKey);
    if (const std::string* vae = get(kVaeKey)) {
      if (vae->empty() || std::filesystem::path(*vae).is_absolute())
        throw Error(ErrorKind::Model, std::string("'") + kVaeKey + "' must name a VAE file relative to the model file");
      info.default_vae = *vae;
    }
    if (const std::string* q = get(kQuantKey))
      info.quantization = quant::model_quantization_from_json(io::parse_json(*q, ErrorKind::Model, kQuantKey));
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorKind::Model, where + ": malformed metadata: " + e.what());
  } catch (const Error& e) {
    throw Error(ErrorKind::Model, where + ": " + e.what());
  }
  return info;
}

nlohmann::json to_json(const SamplerDefaults& d) {
  return {{"sampler", d.sampler},
          {"steps", d.steps},
          {"cfg_scale", d.cfg_scale},
          {"cfg_channels", d.cfg_channels},
          {"schedule", d.schedule}};
}

void validate_sampler_defaults(const SamplerDefaults& d, const DiTConfig& config) {
  try {
    schedule::ComputeSchedule::parse(d.schedule).validate(config, config.input_height, config.input_width, d.steps);
  } catch (const Error& e) {
    throw Error(ErrorKind::Usage, "default schedule '" + d.schedule + "': " + e.what());
  }
}

int64_t ModelInfo::resolve_class(const std::string& prompt) const {
  const std::string key = trim_lower(prompt);
  for (size_t i = 0; i < class_names.size(); ++i)
    if (trim_lower(class_names[i]) == key) return static_cast<int64_t>(i);
  if (!key.empty() && std::all_of(key.begin(), key.end(), [](unsigned char c) { return std::isdigit(c); }) &&
      key.size() < 10) {
    int64_t id = std::stoll(key);
    if (id < config.num_classes) return id;
  }
  std::string valid;
  for (const auto& n : class_names) valid += (valid.empty() ? "" : ", ") + n;
  throw Error(ErrorKind::Usage, "unknown class '" + prompt + "'" + did_you_mean(key, class_names) + "; valid: " +
                                    (valid.empty() ? "" : valid + ", or ") + "an id in 0.." +
                                    std::to_string(config.num_classes - 1));
}

std::string ModelInfo::class_label(int64_t id) const {
  return id >= 0 && id < static_cast<int64_t>(class_names.size()) ? class_names[id] : std::to_string(id);
}

namespace {

// The description of an opened, validated model file: metadata, path, hash.
ModelInfo info_from_file(const io::SafetensorsFile& file, const std::filesystem::path& path) {
  ModelInfo info = model_info_from_metadata(file.metadata(), path.string());
  info.path = path;
  info.sha256 = sha256_hex(path);
  if (info.name.empty()) info.name = path.stem().string();
  return info;
}

}  // namespace

void check_model_path(const std::filesystem::path& path) {
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) return;  // whether it is a model file is open()'s to say
  if (ec) throw Error(ErrorKind::Model, "cannot open model file " + path.string() + ": " + ec.message());
  for (const auto& [name, config] : official_configs())
    if (trim_lower(name) == trim_lower(path.string()))
      throw Error(ErrorKind::Model, "'" + path.string() + "' is an architecture with no weights: create a model file "
                                    "with `ditgen init " + name + " -o FILE` (random weights) or train one, then "
                                    "pass -m FILE; `ditgen info " + name + "` describes it");
  throw Error(ErrorKind::Model, "model file not found: " + path.string());
}

ModelInfo read_model_info(const std::filesystem::path& path) {
  check_model_path(path);
  return info_from_file(io::SafetensorsFile::open(path, ErrorKind::Model), path);
}

void require_memory_for(const DiTConfig& config, ErrorKind kind) {
  const double need = static_cast<double>(dit_parameter_count(config)) * 4;
  const double available = static_cast<double>(available_memory_bytes(at::Device(at::kCPU)));
  if (available > 0 && need > available)
    throw Error(kind, c10::str("the model needs ", std::round(need / (1 << 30) * 10) / 10, " GiB of memory for its ",
                               dit_parameter_count(config), " parameters; ",
                               std::round(available / (1 << 30) * 10) / 10, " GiB are available"));
}

LoadedModel load_model(const std::filesystem::path& path, const at::Device& device, at::ScalarType dtype) {
  check_model_path(path);
  io::SafetensorsFile file = io::SafetensorsFile::open(path, ErrorKind::Model);
  LoadedModel loaded;
  loaded.info = info_from_file(file, path);
  const quant::ModelQuantization& q = loaded.info.quantization;
  if (q.quantized()) quant::require_quantized_device(device, dtype);
  // Every weight takes at least 2 bytes in a float file, bits / 8 in a quantized one.
  const int64_t parameters = dit_parameter_count(loaded.info.config);
  io::require_parameter_bytes(file, q.quantized() ? parameters * q.weight_bits / 16 : parameters);
  require_memory_for(loaded.info.config, ErrorKind::Model);
  auto stored = quant::read_quantized_layers(file, q);
  std::set<std::string> quantized_tensors;
  for (const std::string& layer : q.layers)
    for (const std::string& name : quant::stored_tensor_names(layer, q)) quantized_tensors.insert(name);
  loaded.model = DiT(loaded.info.config);
  quant::install_quantized_layers(loaded.model, std::move(stored), q, path.string());
  io::load_parameters(*loaded.model, file, [&](const std::string& name) { return file.find(name); },
                      [&](const std::string& name) {  // fixed positions (recomputed) and the quantized layers
                        return name == "pos_embed" || quantized_tensors.count(name);
                      });
  loaded.model->to(device, dtype);
  loaded.model->eval();
  return loaded;
}

io::Metadata model_metadata(const ModelInfo& info) {
  io::Metadata meta{{kFormatKey, "1"},
                    {kNameKey, info.name},
                    {kConfigKey, to_json(info.config).dump()},
                    {kSamplerKey, to_json(info.sampler_defaults).dump()},
                    {kTrainingKey, info.training.dump()}};
  if (!info.class_names.empty()) meta[kClassesKey] = nlohmann::json(info.class_names).dump();
  if (!info.default_vae.empty()) meta[kVaeKey] = info.default_vae;
  if (info.quantization.quantized()) meta[kQuantKey] = quant::to_json(info.quantization).dump();
  return meta;
}

void save_model(const std::filesystem::path& path, DiT& model, const ModelInfo& info, at::ScalarType dtype) {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& item : model->named_parameters()) tensors.emplace_back(item.key(), item.value().detach().to(dtype));
  for (auto& item : quant::quantized_layer_tensors(model, info.quantization)) tensors.push_back(std::move(item));
  io::save_tensors(path, tensors, model_metadata(info));
}

ModelBytes model_bytes(const std::filesystem::path& path) {
  const io::SafetensorsFile file = io::SafetensorsFile::open(path, ErrorKind::Model);
  ModelBytes bytes;
  bytes.file = static_cast<int64_t>(std::filesystem::file_size(path));
  for (const io::TensorView& view : file.tensors()) {
    const auto elements = static_cast<int64_t>(view.nbytes / io::dtype_size(view.dtype));
    bytes.loaded += io::is_weight_float(view.dtype)      ? 4 * elements   // float32 once loaded
                    : view.dtype == io::DType::U8         ? 2 * elements   // two 4-bit values a byte, unpacked
                                                          : static_cast<int64_t>(view.nbytes);
  }
  return bytes;
}

ModelInfo model_spec(const std::string& name_or_file) {
  std::error_code ec;  // a path that cannot be examined (a symlink loop) is a file that fails to load below
  if (!std::filesystem::exists(name_or_file, ec) && !ec) {
    ModelInfo info;
    info.config = official_config(name_or_file);
    info.name = name_or_file;
    info.training = {{"untrained", true}};
    return info;
  }
  const nlohmann::json j = io::read_yaml_file(name_or_file);  // YAML is a superset of JSON
  if (!j.is_object()) throw Error(ErrorKind::Input, name_or_file + ": expected a mapping of model fields");
  ModelInfo info;
  try {
    info.name = j.value("name", std::filesystem::path(name_or_file).stem().string());
    info.config = config_from_json(j.contains("config") ? j["config"] : j);
    if (j.contains("class_names")) info.class_names = j["class_names"].get<std::vector<std::string>>();
    if (j.contains("sampler_defaults")) {
      info.sampler_defaults = sampler_defaults_from_json(j["sampler_defaults"]);
      validate_sampler_defaults(info.sampler_defaults, info.config);
    }
  } catch (const std::exception& e) {
    throw Error(ErrorKind::Input, name_or_file + ": " + e.what());
  }
  if (!info.class_names.empty() && static_cast<int>(info.class_names.size()) != info.config.num_classes)
    throw Error(ErrorKind::Input, name_or_file + ": class_names has " + std::to_string(info.class_names.size()) +
                                      " entries for num_classes " + std::to_string(info.config.num_classes));
  info.training = {{"untrained", true}};
  return info;
}

}  // namespace ditgen
