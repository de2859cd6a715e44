#include "ditgen/pipeline/batch.h"

#include <chrono>
#include <fstream>
#include <map>

#include <c10/util/Exception.h>

#include "ditgen/core/error.h"
#include "ditgen/core/log.h"
#include "ditgen/io/atomic_file.h"
#include "ditgen/io/json_limits.h"
#include "ditgen/pipeline/outputs.h"

namespace ditgen {

namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// 'a', 'b', 'c'
std::string quoted_list(const std::vector<std::string>& words) {
  std::string text;
  for (const std::string& w : words) text += (text.empty() ? "'" : ", '") + w + "'";
  return text;
}

// Items that can share a forward pass: everything but label and seed agrees.
std::string compatibility_key(const GenerationRequest& r) {
  return c10::str(r.sampler.name, "|", r.sampler.steps, "|", r.sampler.eta, "|", r.guidance.scale, "|",
                  r.guidance.channels, "|", r.guidance.negative_label, "|", r.negative_prompt, "|", r.height, "x",
                  r.width, "x", r.frames, "|", r.schedule.text());
}

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

// Why `--from` could not make this image again from the record its PNG will carry ("" when it can): every
// field must read back, the prompt and negative must name the same classes (a text model's are the text
// itself), the schedule's text the same schedule.
std::string replay_mismatch(const BatchItem& item, const ModelInfo& info, const BatchSettings& settings) {
  try {
    parse_replay_record(item.record, "the image's record");
    const auto replays_as = [&](const std::string& label, int64_t id, const char* what) -> std::string {
      const int64_t again = info.resolve_class(label);
      if (again == id) return "";
      return c10::str("its record would replay ", what, " '", label, "' (class ", id, ") as class ", again,
                      " (the model's class names repeat), so it is not written");
    };
    if (!info.config.text.enabled()) {
      if (auto why = replays_as(item.prompt, item.request.labels[0], "the prompt"); !why.empty()) return why;
      if (!item.negative.empty())
        if (auto why = replays_as(item.negative, item.request.guidance.negative_label, "the negative"); !why.empty())
          return why;
    }
    const std::string text = item.request.schedule.text();
    const auto reparsed = settings.resolve_schedule ? settings.resolve_schedule(text) : schedule::ComputeSchedule::parse(text);
    if (reparsed.text() != text) return "its compute schedule has no text form that replays it (" + text + ")";
  } catch (const Error& e) {
    return std::string("its record could not be replayed: ") + e.what();
  }
  return "";
}

}  // namespace

const char* status_name(ItemStatus s) {
  switch (s) {
    case ItemStatus::Pending: return "pending";
    case ItemStatus::Ok: return "ok";
    case ItemStatus::Skipped: return "skipped";
    case ItemStatus::Failed: return "failed";
    case ItemStatus::Cancelled: return "cancelled";
  }
  return "?";
}

BatchRun::BatchRun(Generator& generator, const std::vector<io::PromptEntry>& entries, const BatchSettings& settings,
                   const std::string& device_label)
    : generator_(generator), settings_(settings) {
  const ModelInfo& info = generator.info();
  int64_t total = 0;  // counted before anything is planned: a short prompt file may ask for billions
  for (const auto& e : entries) total += e.error.empty() ? e.n.value_or(settings.num_images) : 1;
  if (total > kMaxImagesPerRun)
    throw Error(settings.strict ? ErrorKind::Usage : ErrorKind::Input,
                "the run would make " + std::to_string(total) + " images; a run makes at most " +
                    std::to_string(kMaxImagesPerRun) + " (split the prompts over several runs)");
  items_.reserve(static_cast<size_t>(total));
  if (settings.init_noise.defined() && settings.init_noise.size(0) != total)
    throw Error(ErrorKind::Input, "initial noise has " + std::to_string(settings.init_noise.size(0)) +
                                      " images but the run makes " + std::to_string(total));
  auto fail = [&](BatchItem& item, const std::string& message, ErrorKind kind = ErrorKind::Usage) {
    if (settings.strict) throw Error(kind, message);
    item.status = ItemStatus::Failed;
    item.error = message;
  };
  for (size_t e = 0; e < entries.size(); ++e) {
    const io::PromptEntry& entry = entries[e];
    const int count = entry.error.empty() ? entry.n.value_or(settings.num_images) : 1;
    for (int j = 0; j < count; ++j) {
      BatchItem item;
      item.entry = static_cast<int>(e);
      item.line = entry.line;
      item.index = static_cast<int>(items_.size());
      item.prompt = entry.prompt;
      if (!entry.error.empty()) {
        fail(item, entry.error);
        items_.push_back(std::move(item));
        continue;
      }
      GenerationRequest& r = item.request;
      r.seeds = {entry.seed ? *entry.seed + j : settings.seed + item.index};
      r.sampler = settings.sampler;
      if (entry.steps) r.sampler.steps = *entry.steps;
      r.guidance = settings.guidance;
      if (entry.cfg) r.guidance.scale = *entry.cfg;
      r.width = entry.width.value_or(settings.width);
      r.height = entry.height.value_or(settings.height);
      r.allow_untrained_size = settings.allow_untrained_size;
      r.frames = settings.frames;
      if (settings.init_noise.defined()) r.init_noise = settings.init_noise.narrow(0, item.index, 1);
      r.schedule = settings.schedule;
      try {
        if (entry.schedule)
          r.schedule = settings.resolve_schedule ? settings.resolve_schedule(*entry.schedule)
                                                 : schedule::ComputeSchedule::parse(*entry.schedule);
        const auto negative = entry.negative ? entry.negative : settings.negative;
        if (info.config.text.enabled()) {
          r.prompts = {entry.prompt};
          if (negative) r.negative_prompt = item.negative = *negative;
        } else {
          const int64_t label = info.resolve_class(entry.prompt);
          r.labels = {label};
          item.prompt = info.class_label(label);
          if (negative) {
            r.guidance.negative_label = info.resolve_class(*negative);
            item.negative = info.class_label(r.guidance.negative_label);
          }
        }
        const ResolvedRequest resolved = generator.resolve(r);
        if (j == 0) {
          const std::string where = entry.line > 0 ? "line " + std::to_string(entry.line) + ": " : std::string();
          if (!resolved.unknown_words.empty() && !resolved.unknown_words[0].empty())
            log::warn(where + "ignoring words this model does not know: " + quoted_list(resolved.unknown_words[0]));
          if (!resolved.negative_unknown_words.empty())
            log::warn(where + "ignoring words of the negative prompt this model does not know: " +
                      quoted_list(resolved.negative_unknown_words));
        }
      } catch (const Error& ex) {
        fail(item, (entry.line > 0 ? "line " + std::to_string(entry.line) + ": " : std::string()) + ex.what(),
             ex.kind());
        items_.push_back(std::move(item));
        continue;
      }
      const std::vector<double> step_gflops = generator.step_gflops(r);
      item.record = generation_record(info, r, 0, item.prompt, item.negative, device_label,
                                      dtype_label(generator.dtype()), step_gflops);
      if (settings.decode) item.record["vae"] = settings.vae_record;
      item.clip = item.record.contains("frames");
      if (item.clip) item.record["fps"] = settings.fps;
      if (const std::string why = replay_mismatch(item, info, settings); !why.empty()) {
        fail(item, (entry.line > 0 ? "line " + std::to_string(entry.line) + ": " : std::string()) + why);
        items_.push_back(std::move(item));
        continue;
      }
      item.gflops = item.record["gflops"].get<double>();
      if (!settings.output_template.empty())
        item.path = expand_output_name(settings.output_template,
                                       {item.index, r.seeds[0], item.prompt, r.labels.empty() ? -1 : r.labels[0]},
                                       total > 1);
      items_.push_back(std::move(item));
    }
  }
  std::map<std::filesystem::path, int> taken;
  for (BatchItem& item : items_) {
    if (item.path.empty()) continue;
    auto [it, fresh] = taken.emplace(item.path.lexically_normal(), item.index);
    if (!fresh)
      throw Error(ErrorKind::Usage, "images " + std::to_string(it->second) + " and " + std::to_string(item.index) +
                                        " would both be written to " + item.path.string() +
                                        " (put {index} or {seed} in the output name)");
    if (!settings.resume || item.status != ItemStatus::Pending || !std::filesystem::exists(item.path)) continue;
    try {
      if (same_output(read_generation_record(item.path), item.record)) item.status = ItemStatus::Skipped;
    } catch (const Error&) {
      // not a complete ditgen image for this output: made again
    }
  }
  if (settings.keep_frames) frames_.resize(items_.size());
  if (settings.keep_trajectory) trajectories_.resize(items_.size());
}

BatchSummary BatchRun::run(const std::function<bool()>& stop, const std::function<bool()>& abandon,
                           const std::function<void(const BatchItem&)>& on_item,
                           const std::function<void(const Progress&)>& on_progress) {
  const auto start = Clock::now();
  std::vector<std::pair<std::string, std::vector<size_t>>> groups;  // in order of first appearance
  std::map<std::string, size_t> group_of;
  for (size_t i = 0; i < items_.size(); ++i) {
    if (items_[i].status != ItemStatus::Pending) continue;
    const std::string key = compatibility_key(items_[i].request);
    auto [it, fresh] = group_of.emplace(key, groups.size());
    if (fresh) groups.push_back({key, {}});
    groups[it->second].second.push_back(i);
  }
  // The batches one process would run, in its order; batch b goes to process b mod shards.
  const size_t batch = static_cast<size_t>(std::max(1, settings_.batch_size));
  const auto shards = static_cast<size_t>(std::max(1, settings_.shards));
  std::vector<std::vector<size_t>> mine;
  size_t formed = 0;
  for (const auto& group : groups)
    for (size_t begin = 0; begin < group.second.size(); begin += batch, ++formed) {
      std::vector<size_t> members(group.second.begin() + begin,
                                  group.second.begin() + std::min(group.second.size(), begin + batch));
      const int shard = static_cast<int>(formed % shards);
      for (size_t i : members) items_[i].shard = shard;
      if (shard == settings_.shard) mine.push_back(std::move(members));
    }
  int pending = 0, done = 0;
  for (const auto& members : mine) pending += static_cast<int>(members.size());
  for (const std::vector<size_t>& members : mine) {
    if ((stop && stop()) || !runtime_error_.empty()) break;
    run_group(members, abandon, on_item, [&](Progress p) {
      p.images_done += done;
      p.images_total = pending;
      if (on_progress) on_progress(p);
    });
    done += static_cast<int>(members.size());
  }
  for (BatchItem& item : items_)  // this process's not made; another process's stay pending here
    if (item.shard == settings_.shard && item.status == ItemStatus::Pending) item.status = ItemStatus::Cancelled;
  BatchSummary summary = tally(settings_.shard);
  summary.seconds = since(start);
  return summary;
}

BatchSummary BatchRun::tally(std::optional<int> shard) const {
  BatchSummary summary;
  for (const BatchItem& item : items_) {
    if (shard && item.shard != *shard) continue;
    summary.ok += item.status == ItemStatus::Ok;
    summary.skipped += item.status == ItemStatus::Skipped;
    summary.failed += item.status == ItemStatus::Failed;
    summary.cancelled += item.status == ItemStatus::Cancelled || item.status == ItemStatus::Pending;
  }
  summary.runtime_error = runtime_error_;
  return summary;
}

nlohmann::json BatchRun::shard_states() const {
  nlohmann::json states = nlohmann::json::array();
  for (const BatchItem& item : items_)
    if (item.shard == settings_.shard && !settings_.partner)
      states.push_back({{"index", item.index}, {"status", status_name(item.status)}, {"error", item.error},
                        {"seconds", item.seconds}, {"gflops", item.gflops}, {"record", item.record}});
  return states;
}

void BatchRun::adopt(const nlohmann::json& states) {
  auto status_named = [](const std::string& name) -> std::optional<ItemStatus> {
    for (ItemStatus s : {ItemStatus::Pending, ItemStatus::Ok, ItemStatus::Skipped, ItemStatus::Failed,
                         ItemStatus::Cancelled})
      if (name == status_name(s)) return s;
    return std::nullopt;
  };
  try {
    for (const nlohmann::json& s : states) {
      const auto index = s.at("index").get<size_t>();
      const std::optional<ItemStatus> status = status_named(s.at("status").get<std::string>());
      if (index >= items_.size() || !status)
        throw Error(ErrorKind::Runtime, "a process of the run reported an item it does not have");
      BatchItem& item = items_[index];
      item.status = *status;
      item.error = s.at("error").get<std::string>();
      item.seconds = s.at("seconds").get<double>();
      item.gflops = s.at("gflops").get<double>();
      if (!s.at("record").is_null()) item.record = s.at("record");
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorKind::Runtime, std::string("a process of the run reported damaged item states: ") + e.what());
  }
}

BatchSummary BatchRun::summary() const { return tally(std::nullopt); }

void BatchRun::run_group(const std::vector<size_t>& members, const std::function<bool()>& abandon,
                         const std::function<void(const BatchItem&)>& on_item,
                         const std::function<void(const Progress&)>& on_progress) {
  GenerationRequest r = items_[members.front()].request;
  r.labels.clear();
  r.prompts.clear();
  r.seeds.clear();
  std::vector<at::Tensor> noise;
  for (size_t i : members) {
    const GenerationRequest& one = items_[i].request;
    if (!one.labels.empty()) r.labels.push_back(one.labels[0]);
    if (!one.prompts.empty()) r.prompts.push_back(one.prompts[0]);
    r.seeds.push_back(items_[i].request.seeds[0]);
    if (r.init_noise.defined()) noise.push_back(items_[i].request.init_noise);
  }
  if (!noise.empty()) r.init_noise = at::cat(noise);
  r.batch_size = static_cast<int>(members.size());
  r.auto_batch = settings_.auto_batch;
  r.keep_trajectory = settings_.keep_trajectory;
  auto finish = [&](ItemStatus status, const std::string& error) {
    for (size_t i : members) {
      items_[i].status = status;
      items_[i].error = error;
      if (on_item) on_item(items_[i]);
    }
  };
  const auto start = Clock::now();
  GenerationResult result;
  at::Tensor written;  // [N, F, C, H, W]: the frames, or the images a VAE decoded from them
  // The machine failing (out of memory, a device fault) is no fault of these prompts: it stops the run.
  try {
    result = generator_.generate(r, on_progress, abandon);
    written = result.frames;
    if (!result.cancelled && settings_.decode && !settings_.partner)  // a clip's frames decode as a batch of images
      written = settings_.decode(result.frames.flatten(0, 1)).unflatten(0, {result.frames.size(0), result.frames.size(1)});
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::Runtime) runtime_error_ = e.what();
    return finish(ItemStatus::Failed, e.what());
  } catch (const c10::Error& e) {
    runtime_error_ = first_line(e.what_without_backtrace());
    return finish(ItemStatus::Failed, runtime_error_);
  } catch (const std::bad_alloc&) {
    runtime_error_ = "out of host memory (try a smaller --batch-size)";
    return finish(ItemStatus::Failed, runtime_error_);
  }
  if (result.cancelled) return finish(ItemStatus::Cancelled, "");
  const double seconds = since(start) / static_cast<double>(members.size());
  for (size_t k = 0; k < members.size(); ++k) {
    BatchItem& item = items_[members[k]];
    item.seconds = seconds;
    item.status = ItemStatus::Ok;
    if (settings_.keep_frames) frames_[members[k]] = result.frames[k];
    if (settings_.keep_trajectory) trajectories_[members[k]] = result.trajectory.select(1, k);
    if (!item.path.empty() && !settings_.partner) {
      try {
        if (item.clip)
          write_generation_video(item.path, written[k], settings_.fps, item.record,
                                 io::video_format_for(item.path, settings_.video_format));
        else
          io::write_png(item.path, to_image(written[k][0]), png_metadata(item.record));
      } catch (const Error& e) {
        item.status = ItemStatus::Failed;
        item.error = e.what();
      }
    }
    if (on_item) on_item(item);
  }
}

at::Tensor BatchRun::frames() const {
  for (const at::Tensor& f : frames_)
    if (!f.defined()) throw Error(ErrorKind::Usage, "not every image of the run was generated (resumed or failed)");
  return at::stack(frames_);  // [N, 1, C, H, W]
}

at::Tensor BatchRun::trajectory() const {
  for (const at::Tensor& t : trajectories_)
    if (!t.defined()) throw Error(ErrorKind::Usage, "not every image of the run was generated (resumed or failed)");
  return at::stack(trajectories_, 1);  // [T + 1, N, C, H, W]
}

void BatchRun::write_manifest(const std::filesystem::path& path) const {
  std::string text;
  for (const BatchItem& item : items_) {
    const GenerationRequest& r = item.request;
    nlohmann::json j{{"path", item.path.string()},   {"prompt", item.prompt},
                     {"line", item.line},            {"index", item.index},
                     {"status", status_name(item.status)}, {"run_seed", settings_.seed}};
    if (!item.record.is_null()) {
      j["seed"] = r.seeds[0];
      j["parameters"] = item.record;
      j["seconds"] = item.seconds;
      j["gflops"] = item.gflops;
    }
    if (!item.error.empty()) j["error"] = item.error;
    text += j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";  // bytes of a bad line
  }
  io::AtomicFile out(path);
  out.write(text.data(), text.size());
  out.commit();
}

std::optional<uint64_t> recorded_run_seed(const std::filesystem::path& manifest) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(manifest, ec)) return std::nullopt;
  std::ifstream in(manifest, std::ios::binary);
  std::string line(1 << 20, '\0');
  in.getline(line.data(), static_cast<std::streamsize>(line.size()));
  const bool delimited = !in.eof() && !in.fail();  // gcount then counts the newline too
  line.resize(static_cast<size_t>(std::max<std::streamsize>(in.gcount() - (delimited ? 1 : 0), 0)));
  nlohmann::json row;
  try {
    row = io::parse_json(line, ErrorKind::Input, manifest.string());
  } catch (const Error&) {
    return std::nullopt;  // not a manifest ditgen wrote: the caller asks for the seed instead
  }
  if (!row.is_object() || !row.contains("run_seed") || !row["run_seed"].is_number_unsigned()) return std::nullopt;
  return row["run_seed"].get<uint64_t>();
}

}  // namespace ditgen
