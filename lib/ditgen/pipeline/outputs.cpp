#include "ditgen/pipeline/outputs.h"

#include <sys/stat.h>

#include <cctype>
#include <cmath>
#include <cstdio>
#include <algorithm>
#include <map>
#include <optional>

#include "ditgen/io/json_limits.h"
#include "ditgen/io/video.h"

namespace ditgen {

namespace {

std::string sanitize(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (out.size() >= 48) break;
    char l = static_cast<char>(std::tolower(c));
    out += (std::isalnum(static_cast<unsigned char>(l)) && c < 128) || l == '-' || l == '_' ? l : '_';
  }
  return out.empty() ? "_" : out;
}

// The same file under any name: device and inode for files that exist, else the absolute path with its
// existing part's links resolved.
std::string file_identity(const std::filesystem::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0)
    return "inode:" + std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
  std::error_code ec;
  const std::filesystem::path absolute = std::filesystem::absolute(path, ec);
  const std::filesystem::path canonical = std::filesystem::weakly_canonical(absolute, ec);
  return "path:" + (ec ? absolute.lexically_normal() : canonical).string();
}

enum class FieldKind { Text, Unsigned, Integer, Number, Flag, Object };

// A record field as replay option text; Error(Input) naming it when it is missing or not of its kind.
std::string record_field(const nlohmann::json& record, const char* key, FieldKind kind, const std::string& source) {
  auto bad = [&](const std::string& why) {
    return Error(ErrorKind::Input, source + ": damaged ditgen record: '" + key + "' " + why);
  };
  if (!record.contains(key)) throw bad("is missing");
  const nlohmann::json& v = record[key];
  switch (kind) {
    case FieldKind::Text:
      if (v.is_string()) return v.get<std::string>();
      break;
    case FieldKind::Unsigned:
      if (v.is_number_unsigned()) return std::to_string(v.get<uint64_t>());
      break;
    case FieldKind::Integer:
      if (v.is_number_integer() && v.get<int64_t>() >= INT32_MIN && v.get<int64_t>() <= INT32_MAX)
        return std::to_string(v.get<int64_t>());
      break;
    case FieldKind::Number:
      if (v.is_number() && std::isfinite(v.get<double>())) return v.dump();  // reads back as the same double
      break;
    case FieldKind::Flag:
      if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
      break;
    case FieldKind::Object:
      if (v.is_object()) return "";
      break;
  }
  throw bad("has the wrong type");
}

}  // namespace

ReplayRecord parse_replay_record(const nlohmann::json& record, const std::string& source) {
  if (!record.is_object()) throw Error(ErrorKind::Input, source + ": damaged ditgen record: not an object");
  ReplayRecord replay;
  replay.options.emplace_back("prompt", record_field(record, "prompt", FieldKind::Text, source));
  struct Field {
    const char* key;
    const char* option;
    FieldKind kind;
  };
  static const Field kOptional[] = {
      {"seed", "seed", FieldKind::Unsigned},        {"steps", "steps", FieldKind::Integer},
      {"sampler", "sampler", FieldKind::Text},      {"eta", "eta", FieldKind::Number},
      {"cfg_scale", "cfg-scale", FieldKind::Number}, {"cfg_channels", "cfg-channels", FieldKind::Integer},
      {"height", "height", FieldKind::Integer},     {"width", "width", FieldKind::Integer},
      {"dtype", "dtype", FieldKind::Text},          {"schedule", "schedule", FieldKind::Text},
      {"any_size", "any-size", FieldKind::Flag},    {"frames", "frames", FieldKind::Integer},
      {"fps", "fps", FieldKind::Integer}};
  for (const Field& f : kOptional)
    if (record.contains(f.key)) replay.options.emplace_back(f.option, record_field(record, f.key, f.kind, source));
  if (record.contains("negative")) {
    const std::string negative = record_field(record, "negative", FieldKind::Text, source);
    if (!negative.empty()) replay.options.emplace_back("negative", negative);
  }
  if (record.contains("model")) {
    const nlohmann::json& model = record["model"];
    if (!model.is_object()) throw Error(ErrorKind::Input, source + ": damaged ditgen record: 'model' is not an object");
    replay.model_file = model.contains("file") ? record_field(model, "file", FieldKind::Text, source) : "";
    replay.model_sha256 = model.contains("sha256") ? record_field(model, "sha256", FieldKind::Text, source) : "";
    if (replay.model_file != std::filesystem::path(replay.model_file).filename().string())
      throw Error(ErrorKind::Input, source + ": damaged ditgen record: the model file name has a folder");
  }
  if (record.contains("vae")) {
    const nlohmann::json& vae = record["vae"];
    if (!vae.is_object()) throw Error(ErrorKind::Input, source + ": damaged ditgen record: 'vae' is not an object");
    replay.vae_file = record_field(vae, "file", FieldKind::Text, source);
    replay.vae_sha256 = vae.contains("sha256") ? record_field(vae, "sha256", FieldKind::Text, source) : "";
    if (replay.vae_file.empty() || replay.vae_file != std::filesystem::path(replay.vae_file).filename().string())
      throw Error(ErrorKind::Input, source + ": damaged ditgen record: the VAE file name is empty or has a folder");
    if (vae.contains("tile")) replay.options.emplace_back("vae-tile", record_field(vae, "tile", FieldKind::Text, source));
  }
  return replay;
}

void check_run_files(const std::vector<RunFile>& outputs, const std::vector<RunFile>& inputs) {
  std::map<std::string, const RunFile*> claimed;  // identity -> the input or output that names it
  for (const RunFile& in : inputs)
    if (!in.path.empty()) claimed.emplace(file_identity(in.path), &in);
  for (const RunFile& out : outputs) {
    if (out.path.empty()) continue;
    std::error_code ec;
    const auto status = std::filesystem::status(out.path, ec);
    if (std::filesystem::exists(status) && !std::filesystem::is_regular_file(status))
      throw Error(ErrorKind::Usage, out.role + " " + out.path.string() + " exists and is not a regular file" +
                                        (std::filesystem::is_directory(status) ? " (it is a folder)" : ""));
    auto [it, fresh] = claimed.emplace(file_identity(out.path), &out);
    if (!fresh)
      throw Error(ErrorKind::Usage, out.role + " " + out.path.string() + " is also " + it->second->role +
                                        (it->second->path == out.path ? "" : " " + it->second->path.string()) +
                                        ": give it another name");
  }
}

void require_extension(const std::filesystem::path& path, const std::string& extension, const std::string& role) {
  std::string ext = path.extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (ext != extension)
    throw Error(ErrorKind::Usage, role + " " + path.string() + ": ditgen writes " + extension.substr(1) +
                                      " files here, so the name must end in " + extension);
}

std::string output_template_from(const std::string& text) {
  if (text.empty()) throw Error(ErrorKind::Usage, "the output name is empty (e.g. -o out/{prompt}-{seed}.png)");
  const std::string tmpl = text.back() == '/' ? text + "{prompt}-{seed}.png" : text;
  require_extension(tmpl, ".png", "output name");
  return tmpl;
}

std::string clip_template_from(const std::string& text, const std::string& format) {
  if (text.empty()) throw Error(ErrorKind::Usage, "the output name is empty (e.g. -o out/{prompt}-{seed}.mp4)");
  std::string tmpl = text;
  if (text.back() == '/') {
    const std::optional<io::VideoFormat> chosen =
        !format.empty() ? io::parse_video_format(format)
        : io::video_format_supported(io::VideoFormat::Mp4) ? io::VideoFormat::Mp4 : io::VideoFormat::Gif;
    if (!chosen) io::video_format_for(tmpl, format);  // Error(Usage): an unknown format, with the choices
    tmpl += "{prompt}-{seed}";
    if (*chosen != io::VideoFormat::PngFrames) tmpl += std::string(".") + io::video_format_name(*chosen);
  }
  io::video_format_for(tmpl, format);  // Error(Usage) listing the choices
  return tmpl;
}

std::filesystem::path expand_output_name(const std::string& tmpl, const OutputFields& f, bool several) {
  std::string out;
  bool varies = false;
  for (size_t i = 0; i < tmpl.size(); ++i) {
    if (tmpl[i] != '{') {
      out += tmpl[i];
      continue;
    }
    const size_t close = tmpl.find('}', i);
    if (close == std::string::npos) throw Error(ErrorKind::Usage, "output name '" + tmpl + "': unterminated '{'");
    std::string key = tmpl.substr(i + 1, close - i - 1);
    int width = 0;
    if (auto colon = key.find(':'); colon != std::string::npos) {
      const std::string digits = key.substr(colon + 1);
      if (digits.empty() || digits.size() > 2 || digits.find_first_not_of("0123456789") != std::string::npos)
        throw Error(ErrorKind::Usage, "output name '" + tmpl + "': bad width in {" + key + "}");
      width = std::stoi(digits);
      key = key.substr(0, colon);
    }
    std::string value;
    if (key == "index") {
      value = std::to_string(f.index);
      varies = true;
    } else if (key == "seed") {
      value = std::to_string(f.seed);
      varies = true;
    } else if (key == "prompt") {
      value = sanitize(f.prompt);
    } else if (key == "class") {
      value = std::to_string(f.class_id);
    } else {
      throw Error(ErrorKind::Usage, "output name '" + tmpl + "': unknown field {" + key +
                                        "} (use {index}, {index:N}, {seed}, {prompt}, {class})");
    }
    if (static_cast<int>(value.size()) < width) value.insert(0, width - value.size(), '0');
    out += value;
    i = close;
  }
  std::filesystem::path path(out);
  if (several && !varies) {
    path.replace_filename(path.stem().string() + "-" + std::to_string(f.index) + path.extension().string());
  }
  for (const auto& part : path)
    if (part == "..") throw Error(ErrorKind::Usage, "output name '" + out + "' must not contain '..'");
  if (path.filename().empty()) throw Error(ErrorKind::Usage, "output name '" + out + "' has no file name");
  return path;
}

io::Image to_image(const at::Tensor& frame) {
  const int64_t C = frame.size(0);
  if (C != 1 && C != 3)
    throw Error(ErrorKind::Usage, "cannot write " + std::to_string(C) +
                                      "-channel frames as images (latent models need a VAE: use --save-latents)");
  at::Tensor pixels = ((frame.to(at::kFloat) + 1) * 127.5).round().clamp(0, 255)  // [C, H, W]
                          .to(at::kByte).permute({1, 2, 0}).contiguous();         // [H, W, C]
  io::Image image;
  image.height = static_cast<int>(pixels.size(0));
  image.width = static_cast<int>(pixels.size(1));
  image.channels = static_cast<int>(C);
  image.pixels.assign(pixels.data_ptr<uint8_t>(), pixels.data_ptr<uint8_t>() + pixels.numel());
  return image;
}

io::Image tile_images(const at::Tensor& frames, int columns) {
  const int64_t N = frames.size(0), C = frames.size(1), H = frames.size(2), W = frames.size(3);
  const int64_t cols = std::min<int64_t>(columns, N), rows = (N + cols - 1) / cols;
  at::Tensor canvas = at::full({C, rows * (H + 1) - 1, cols * (W + 1) - 1}, -1.0f);  // gaps stay black
  for (int64_t i = 0; i < N; ++i) {
    const int64_t r = i / cols, c = i % cols;
    canvas.narrow(1, r * (H + 1), H).narrow(2, c * (W + 1), W).copy_(frames[i]);
  }
  return to_image(canvas);
}

io::Image contact_sheet(const at::Tensor& frames) {
  const int columns = static_cast<int>(std::ceil(std::sqrt(static_cast<double>(frames.size(0)))));
  return tile_images(frames, columns);
}

at::Tensor frame_from_image(const io::Image& image) {
  at::Tensor pixels = at::from_blob(const_cast<uint8_t*>(image.pixels.data()), {image.height, image.width, image.channels},
                                    at::kByte);                      // [H, W, C]
  return pixels.permute({2, 0, 1}).to(at::kFloat) / 127.5 - 1;  // [C, H, W]
}

at::Tensor frames_from_clip(const io::VideoClip& clip, int channels) {
  at::Tensor pixels = at::from_blob(const_cast<uint8_t*>(clip.pixels.data()), {clip.frames, clip.height, clip.width, 3},
                                    at::kByte);                              // [F, H, W, 3]
  at::Tensor frames = pixels.permute({0, 3, 1, 2}).to(at::kFloat) / 127.5 - 1;  // [F, 3, H, W]
  return channels == 1 ? frames.narrow(1, 0, 1).contiguous() : frames;       // [F, C, H, W]
}

void write_trajectory_video(const std::filesystem::path& path, const at::Tensor& trajectory, int columns) {
  const io::Image first = tile_images(trajectory[0], columns);  // trajectory [T + 1, N, C, H, W]
  io::VideoOptions options;
  options.scale = std::max(1, 256 / std::max(first.width, 1));
  io::VideoWriter video(path, first.width, first.height, first.channels, options);
  for (int64_t t = 0; t < trajectory.size(0); ++t) video.add_frame(tile_images(trajectory[t], columns).pixels.data());
  video.finish();
}

nlohmann::json generation_record(const ModelInfo& model, const GenerationRequest& r, size_t i,
                                 const std::string& prompt, const std::string& negative, const std::string& device,
                                 const std::string& dtype, const std::vector<double>& gflops_per_step) {
  double gflops = 0;
  for (double g : gflops_per_step) gflops += g;
  const int h = r.height > 0 ? r.height : model.config.input_height;
  const int w = r.width > 0 ? r.width : model.config.input_width;
  nlohmann::json record = {{"schema", 1},
          {"version", std::string("ditgen ") + DITGEN_VERSION},
          {"model", {{"name", model.name}, {"sha256", model.sha256}, {"file", model.path.filename().string()}}},
          {"prompt", prompt},
          {"class_id", r.labels.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.labels.at(i))},  // null: text
          {"negative", negative},
          {"seed", r.seeds.at(i)},
          {"sampler", r.sampler.name},
          {"steps", r.sampler.steps},
          {"eta", r.sampler.eta},
          {"cfg_scale", r.guidance.scale},
          {"cfg_channels", r.guidance.channels},
          {"height", h},
          {"width", w},
          {"any_size", r.allow_untrained_size},
          {"init_noise", r.init_noise.defined()},
          {"device", device},
          {"dtype", dtype},
          {"schedule", r.schedule.text()},
          {"gflops", gflops},
          {"gflops_per_step", gflops_per_step}};
  if (const int frames = run_frames(model.config, r.frames); frames > 1) record["frames"] = frames;
  return record;
}

bool same_output(const nlohmann::json& have, const nlohmann::json& want) {
  for (const char* key : {"prompt", "class_id", "negative", "seed", "sampler", "steps", "eta", "cfg_scale", "cfg_channels",
                          "height", "width", "init_noise", "dtype"})
    if (!have.contains(key) || have[key] != want.at(key)) return false;
  if (have.value("schedule", std::string("dense")) != want.value("schedule", std::string("dense"))) return false;
  for (const char* key : {"frames", "fps", "vae"})  // absent for images, and for pixel models
    if (have.value(key, nlohmann::json()) != want.value(key, nlohmann::json())) return false;
  return have.contains("model") && have["model"].value("sha256", "") == want.at("model").value("sha256", "x");
}

nlohmann::json read_generation_record(const std::filesystem::path& path) {
  // Clips are told by content; anything else is read as a PNG (and refused as one).
  const std::optional<io::VideoFormat> clip = io::detect_video_format(path);
  std::optional<std::string> text;
  if (clip) {
    text = io::read_video_record(path);
    if (text->empty()) text.reset();
  } else {
    for (const io::PngText& t : io::read_png_text(path))
      if (t.keyword == "ditgen") {
        text = t.text;
        break;
      }
  }
  if (!text) throw Error(ErrorKind::Input, path.string() + ": no ditgen metadata (was it written by ditgen?)");
  const nlohmann::json j = io::parse_json(*text, ErrorKind::Input, path.string() + ": its ditgen record");
  if (!j.is_object() || !j.contains("schema"))
    throw Error(ErrorKind::Input, path.string() + ": its ditgen metadata is not a valid record");
  return j;
}

std::string parameters_text(const nlohmann::json& rec, const std::string& source) {
  // Every field is checked (type, range) before it is converted: a clip's record is as untrusted as its file.
  if (!rec.is_object()) throw Error(ErrorKind::Input, source + ": damaged ditgen record: not an object");
  auto field = [&](const nlohmann::json& in, const char* key, FieldKind kind) -> const nlohmann::json& {
    record_field(in, key, kind, source);
    return in[key];
  };
  auto optional = [&](const nlohmann::json& in, const char* key, FieldKind kind, const nlohmann::json& otherwise) {
    return in.contains(key) ? field(in, key, kind) : otherwise;
  };
  const nlohmann::json& model = field(rec, "model", FieldKind::Object);
  const std::string hash = optional(model, "sha256", FieldKind::Text, "").get<std::string>();
  const std::string schedule = optional(rec, "schedule", FieldKind::Text, "dense").get<std::string>();
  const std::string prompt = field(rec, "prompt", FieldKind::Text).get<std::string>();
  char cfg[32], gflops[32];
  std::snprintf(cfg, sizeof cfg, "%g", field(rec, "cfg_scale", FieldKind::Number).get<double>());
  std::snprintf(gflops, sizeof gflops, "%.4g", optional(rec, "gflops", FieldKind::Number, 0.0).get<double>());
  std::string params = prompt + "\nSteps: " + std::to_string(field(rec, "steps", FieldKind::Integer).get<int>()) +
                       ", Sampler: " + field(rec, "sampler", FieldKind::Text).get<std::string>() + ", CFG scale: " + cfg +
                       ", Seed: " + std::to_string(field(rec, "seed", FieldKind::Unsigned).get<uint64_t>()) +
                       ", Size: " + std::to_string(field(rec, "width", FieldKind::Integer).get<int>()) + "x" +
                       std::to_string(field(rec, "height", FieldKind::Integer).get<int>()) +
                       (schedule == "dense" ? "" : ", Schedule: " + schedule) + ", GFLOPs: " + gflops +
                       (hash.empty() ? "" : ", Model hash: " + hash.substr(0, 10)) +
                       ", Model: " + optional(model, "name", FieldKind::Text, "").get<std::string>() +
                       ", Version: " + field(rec, "version", FieldKind::Text).get<std::string>();
  const std::string negative = optional(rec, "negative", FieldKind::Text, "").get<std::string>();
  if (!negative.empty()) params.insert(prompt.size(), "\nNegative prompt: " + negative);
  return params;
}

std::vector<io::PngText> png_metadata(const nlohmann::json& rec) {
  return {{"parameters", parameters_text(rec, "the record")}, {"ditgen", rec.dump()}};
}

void write_generation_video(const std::filesystem::path& path, const at::Tensor& frames, int fps,
                            const nlohmann::json& record, io::VideoFormat format) {
  if (frames.dim() != 4 || frames.size(0) < 1)
    throw Error(ErrorKind::Usage, "a clip's frames must be [F, C, H, W] with F >= 1");
  std::vector<uint8_t> pixels;
  int width = 0, height = 0, channels = 0;
  for (int64_t f = 0; f < frames.size(0); ++f) {
    const io::Image image = to_image(frames[f]);
    width = image.width;
    height = image.height;
    channels = image.channels;
    if (f == 0) pixels.reserve(image.pixels.size() * std::size_t(frames.size(0)));
    pixels.insert(pixels.end(), image.pixels.begin(), image.pixels.end());
  }
  io::VideoWriteOptions options;
  if (format == io::VideoFormat::PngFrames) options.frame_texts = {{"parameters", parameters_text(record, "the record")}};
  io::write_video(path, pixels, width, height, channels, fps, record.dump(), format, options);
}

}  // namespace ditgen
