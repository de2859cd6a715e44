#include "ditgen/schedule/compute_schedule.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include <nlohmann/json.hpp>

#include "ditgen/core/error.h"
#include "ditgen/io/yaml_json.h"
#include "ditgen/models/cost.h"

namespace ditgen::schedule {

namespace {

std::string number_text(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

[[noreturn]] void bad(const std::string& item, const std::string& why) {
  throw Error(ErrorKind::Usage, "invalid compute schedule item '" + item + "': " + why +
                                    " (examples: dense, weak=4:0.4, cond=4:0.3,guide=4:0.6, weak=8:0.2+4:0.5, "
                                    "density=6:10, grid=8)");
}

double parse_number(const std::string& text, const std::string& item) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    bad(item, "'" + text + "' is not a number");
  }
  if (used != text.size() || !std::isfinite(v)) bad(item, "'" + text + "' is not a number");
  return v;
}

// A fraction "0.25" or "25%" in [0, 1].
double parse_fraction(std::string text, const std::string& item) {
  const bool percent = !text.empty() && text.back() == '%';
  if (percent) text.pop_back();
  const double v = parse_number(text, item) / (percent ? 100.0 : 1.0);
  if (v < 0 || v > 1) bad(item, "the fraction must be in [0, 1] (or 0%..100%)");
  return v;
}

int parse_grid(const std::string& text, const std::string& item) {
  const double v = parse_number(text, item);
  if (v != std::floor(v) || v < 1 || v > 256) bad(item, "a sparse grid is an integer in 1..256");
  return static_cast<int>(v);
}

// "P:F+P:F..." -> phases with increasing ends.
std::vector<Phase> parse_phases(const std::string& value, const std::string& item) {
  std::vector<Phase> out;
  std::stringstream in(value);
  for (std::string part; std::getline(in, part, '+');) {
    const size_t colon = part.find(':');
    if (colon == std::string::npos) bad(item, "a phase is PATCH:FRACTION");
    const double patch = parse_number(part.substr(0, colon), item);
    const double until = parse_fraction(part.substr(colon + 1), item);
    if (patch != std::floor(patch) || patch < 1 || patch > 16) bad(item, "the patch size must be an integer in 1..16");
    if (!out.empty() && until <= out.back().until) bad(item, "each phase must end after the one before");
    out.push_back({static_cast<int>(patch), until});
  }
  if (out.empty()) bad(item, "no phase given");
  return out;
}

std::string phases_text(const std::vector<Phase>& phases) {
  std::string s;
  for (const Phase& p : phases) s += (s.empty() ? "" : "+") + std::to_string(p.patch) + ":" + number_text(p.until);
  return s;
}

int patch_at(const std::vector<Phase>& phases, int k, int steps, int native) {
  for (const Phase& p : phases)
    if (k < static_cast<int>(std::lround(p.until * steps))) return p.patch;
  return native;
}

std::vector<Phase> phases_from_json(const nlohmann::json& j, const std::string& key) {
  std::vector<Phase> out;
  if (!j.is_array() || j.empty()) throw Error(ErrorKind::Usage, key + " must be a list of {patch, until}");
  std::string text;
  for (const auto& p : j) {
    if (!p.is_object() || !p.contains("patch") || !p.contains("until"))
      throw Error(ErrorKind::Usage, key + " must be a list of {patch, until}");
    text += (text.empty() ? "" : "+") + p.at("patch").dump() + ":" + p.at("until").dump();
  }
  return parse_phases(text, key);
}

}  // namespace

ComputeSchedule resolve_schedule(const std::string& spec, const std::vector<std::filesystem::path>& preset_dirs) {
  const std::filesystem::path path(spec);
  std::error_code ec;
  if (path.extension() == ".yaml" || path.extension() == ".yml" || std::filesystem::is_regular_file(path, ec))
    return ComputeSchedule::load_yaml(path);
  const bool name_like = !spec.empty() && spec.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-_") == std::string::npos;
  if (name_like && spec != "dense")
    for (const auto& dir : preset_dirs)
      if (std::filesystem::is_regular_file(dir / (spec + ".yaml"), ec)) return ComputeSchedule::load_yaml(dir / (spec + ".yaml"));
  try {
    return ComputeSchedule::parse(spec);
  } catch (const Error& e) {
    if (!name_like) throw;
    std::string names;
    for (const auto& n : preset_names(preset_dirs)) names += (names.empty() ? "" : ", ") + n;
    throw Error(ErrorKind::Usage, "unknown compute schedule '" + spec + "': not a preset (" +
                                      (names.empty() ? std::string("none found") : names) + ") and not the shorthand");
  }
}

std::vector<std::string> preset_names(const std::vector<std::filesystem::path>& preset_dirs) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& dir : preset_dirs)
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec))
      if (entry.path().extension() == ".yaml" &&
          std::find(out.begin(), out.end(), entry.path().stem().string()) == out.end())
        out.push_back(entry.path().stem().string());
  std::sort(out.begin(), out.end());
  return out;
}

double weak_guidance_scale(double cfg_scale) { return 1.0 - (1.0 - cfg_scale) / 2.5; }

ComputeSchedule ComputeSchedule::parse(const std::string& text) {
  ComputeSchedule s;
  if (text.size() > 4096) throw Error(ErrorKind::Usage, "compute schedule text is longer than 4096 characters");
  std::stringstream in(text);
  bool any = false;
  std::optional<double> density_hold;
  for (std::string item; std::getline(in, item, ',');) {
    any = true;
    if (item == "dense") continue;
    const size_t eq = item.find('=');
    if (eq == std::string::npos) bad(item, "expected KEY=VALUE or dense");
    const std::string key = item.substr(0, eq), value = item.substr(eq + 1);
    if (key == "weak") {
      s.cond_ = s.guide_ = parse_phases(value, item);
    } else if (key == "cond") {
      s.cond_ = parse_phases(value, item);
    } else if (key == "guide") {
      s.guide_ = parse_phases(value, item);
    } else if (key == "guidance") {
      if (value != "weak" && value != "null") bad(item, "guidance is weak or null");
      s.weak_guidance_ = value == "weak";
    } else if (key == "weak-scale" || key == "weak-cfg") {
      const double v = parse_number(value, item);
      if (v < 0 || v > 100) bad(item, "the scale must be in [0, 100]");
      (key == "weak-scale" ? s.weak_scale_ : s.weak_cfg_) = v;
    } else if (key == "density") {
      const size_t colon = value.find(':');
      if (colon == std::string::npos) bad(item, "density is MIN:MAX (sparse grids)");
      Density d = s.density_.value_or(Density{});
      d.min_grid = parse_grid(value.substr(0, colon), item);
      d.max_grid = parse_grid(value.substr(colon + 1), item);
      if (d.min_grid > d.max_grid) bad(item, "the first grid is the sparsest: MIN <= MAX");
      s.density_ = d;
    } else if (key == "grid") {
      Density d = s.density_.value_or(Density{});
      d.min_grid = d.max_grid = parse_grid(value, item);
      s.density_ = d;
    } else if (key == "density-hold") {
      density_hold = parse_fraction(value, item);
    } else {
      bad(item, "unknown key '" + key + "' (weak, cond, guide, guidance, weak-scale, weak-cfg, density, "
                "density-hold, grid)");
    }
  }
  if (!any) bad(text, "empty");
  if (density_hold) {
    if (!s.density_) bad(text, "density-hold needs density=MIN:MAX");
    s.density_->hold = *density_hold;
  }
  return s;
}

ComputeSchedule ComputeSchedule::load_yaml(const std::filesystem::path& path) {
  const nlohmann::json j = io::read_yaml_file(path);
  try {
    if (!j.is_object()) throw Error(ErrorKind::Usage, "expected a mapping");
    ComputeSchedule s;
    for (const auto& [key, value] : j.items()) {
      if (key == "description") s.description_ = value.get<std::string>();
      else if (key == "both") s.cond_ = s.guide_ = phases_from_json(value, key);
      else if (key == "cond") s.cond_ = phases_from_json(value, key);
      else if (key == "guide") s.guide_ = phases_from_json(value, key);
      else if (key == "guidance") s.weak_guidance_ =  // YAML reads an unquoted null as no value
          parse("guidance=" + (value.is_null() ? std::string("null") : value.get<std::string>())).weak_guidance_;
      else if (key == "weak_scale") s.weak_scale_ = parse("weak-scale=" + value.dump()).weak_scale_;
      else if (key == "weak_cfg") s.weak_cfg_ = parse("weak-cfg=" + value.dump()).weak_cfg_;
      else if (key == "grid") s.density_ = parse("grid=" + value.dump()).density_;
      else if (key == "density") {
        if (!value.is_object() || !value.contains("min") || !value.contains("max"))
          throw Error(ErrorKind::Usage, "density must be {min: S, max: S, hold: F}");
        for (const auto& [k, v] : value.items())
          if (k != "min" && k != "max" && k != "hold") throw Error(ErrorKind::Usage, "unknown density key '" + k + "'");
        std::string text = "density=" + value.at("min").dump() + ":" + value.at("max").dump();
        if (value.contains("hold")) text += ",density-hold=" + value.at("hold").dump();
        s.density_ = parse(text).density_;
      } else throw Error(ErrorKind::Usage, "unknown key '" + key + "' (description, both, cond, guide, guidance, "
                                                                   "weak_scale, weak_cfg, density, grid)");
    }
    return s;
  } catch (const Error& e) {
    throw Error(ErrorKind::Input, path.string() + ": " + e.what());
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorKind::Input, path.string() + ": " + e.what());
  }
}

StepPlan ComputeSchedule::plan(int k, int steps, const DiTConfig& model, bool guided) const {
  const int native = model.patch_size;
  StepPlan p;
  p.cond_patch = patch_at(cond_, k, steps, native);
  p.guide_patch = guided ? patch_at(guide_, k, steps, native) : p.cond_patch;
  p.weak_guidance = guided && weak_guidance_ && p.cond_patch < p.guide_patch;
  if (guided && weak_cfg_ && p.cond_patch > native) p.cfg_scale = *weak_cfg_;
  if (model.sparse.sparse())
    p.sparse_grid = density_.value_or(Density{model.sparse.min_grid, model.sparse.max_grid}).grid(k, steps);
  return p;
}

void ComputeSchedule::validate(const DiTConfig& config, int height, int width, int steps) const {
  if (density_ && !config.sparse.sparse())
    throw Error(ErrorKind::Usage, "compute schedule '" + text() + "' sets a sparse token grid, but this model has "
                                  "no sparse layout (it is not a SparseDiT model)");
  // Each step's grid against the tokens of the larger of its two patch sizes: a patch schedule may start
  // coarse while the grids are small, and end at the model's own patch on grids a coarse patch could not hold.
  if (config.sparse.sparse())
    for (int k = 0; k < steps; ++k) {
      const StepPlan p = plan(k, steps, config, true);
      const int patch = std::max(p.cond_patch, p.guide_patch);
      const int fits = std::min(height, width) / patch;
      if (p.sparse_grid > fits)
        throw Error(ErrorKind::Usage, "compute schedule '" + text() + "': sparse grid " +
                                          std::to_string(p.sparse_grid) + " does not fit the " +
                                          std::to_string(fits) + "-token side of " + std::to_string(height) + "x" +
                                          std::to_string(width) + " at patch size " + std::to_string(patch) +
                                          " (step " + std::to_string(k + 1) + " of " + std::to_string(steps) + ")");
    }
  if (height % config.patch_size == 0 && width % config.patch_size == 0)
    config.check_token_grid(height / config.patch_size, width / config.patch_size);
  for (const auto* phases : {&cond_, &guide_})
    for (const Phase& p : *phases) {
      if (!config.supports_patch(p.patch)) {
        std::string sizes;
        for (int q : config.runnable_patches()) sizes += (sizes.empty() ? "" : ", ") + std::to_string(q);
        throw Error(ErrorKind::Usage, "compute schedule '" + text() + "' uses patch size " + std::to_string(p.patch) +
                                          ", but this model runs only patch size " + sizes +
                                          (config.flex.flexible() ? "" : " (it is not a flexible model)"));
      }
      if (height % p.patch || width % p.patch)
        throw Error(ErrorKind::Usage, "compute schedule '" + text() + "': patch size " + std::to_string(p.patch) +
                                          " does not divide " + std::to_string(height) + "x" + std::to_string(width));
      config.check_token_grid(height / p.patch, width / p.patch);
    }
}

std::string ComputeSchedule::text() const {
  std::string s;
  auto add = [&](const std::string& item) { s += (s.empty() ? "" : ",") + item; };
  if (!cond_.empty() && cond_.size() == guide_.size() && phases_text(cond_) == phases_text(guide_)) {
    add("weak=" + phases_text(cond_));
  } else {
    if (!cond_.empty()) add("cond=" + phases_text(cond_));
    if (!guide_.empty()) add("guide=" + phases_text(guide_));
  }
  if (!weak_guidance_) add("guidance=null");
  if (weak_scale_) add("weak-scale=" + number_text(*weak_scale_));
  if (weak_cfg_) add("weak-cfg=" + number_text(*weak_cfg_));
  if (density_ && density_->min_grid == density_->max_grid) add("grid=" + std::to_string(density_->min_grid));
  if (density_ && density_->min_grid != density_->max_grid) {
    add("density=" + std::to_string(density_->min_grid) + ":" + std::to_string(density_->max_grid));
    if (density_->hold != Density{}.hold) add("density-hold=" + number_text(density_->hold));
  }
  return s.empty() ? "dense" : s;
}

double ComputeSchedule::weak_scale(double cfg_scale) const {
  return weak_scale_ ? *weak_scale_ : weak_guidance_scale(cfg_scale);
}

std::vector<double> step_gflops(const DiTConfig& config, int height, int width, const ComputeSchedule& schedule,
                                int steps, bool guided, bool lora_merged, int frames) {
  std::vector<double> out;
  for (int k = 0; k < steps; ++k) {
    const StepPlan p = schedule.plan(k, steps, config, guided);
    double g = dit_gflops(config, height, width, p.cond_patch, lora_merged, p.sparse_grid, frames);
    if (guided) g += dit_gflops(config, height, width, p.guide_patch, lora_merged, p.sparse_grid, frames);
    out.push_back(g);
  }
  return out;
}

}  // namespace ditgen::schedule
