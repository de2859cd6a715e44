#include "shipped.h"

#include <unistd.h>

#include <cstdlib>
#include <vector>

#include "ditgen/models/model_file.h"

namespace ditgen::cli {

namespace {

// $ENV, then `repo_dir` of the source tree the binary sits in (<repo>/build/bin/ditgen), an installed
// <prefix>/share/ditgen/`share_dir`, and the source tree it was built from.
std::vector<std::filesystem::path> search_folders(const char* env_name, const std::filesystem::path& repo_dir,
                                                  const std::string& share_dir) {
  std::vector<std::filesystem::path> out;
  if (const char* env = std::getenv(env_name); env && *env) out.emplace_back(env);
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    out.push_back(exe.parent_path().parent_path().parent_path() / repo_dir);
    out.push_back(exe.parent_path().parent_path() / "share" / "ditgen" / share_dir);
  }
  out.push_back(std::filesystem::path(DITGEN_SOURCE_DIR) / repo_dir);
  return out;
}

std::vector<std::filesystem::path> folders() { return search_folders("DITGEN_MODELS_DIR", "models", "models"); }

}  // namespace

std::optional<std::filesystem::path> find_shipped(const std::string& name) {
  for (const auto& dir : folders())
    if (std::filesystem::is_regular_file(dir / name)) return dir / name;
  return std::nullopt;
}

std::vector<std::filesystem::path> schedule_preset_dirs() {
  return search_folders("DITGEN_SCHEDULES_DIR", std::filesystem::path("configs") / "schedules", "schedules");
}

schedule::ComputeSchedule resolve_schedule(const std::string& spec) {
  return schedule::resolve_schedule(spec, schedule_preset_dirs());
}

schedule::ComputeSchedule resolve_schedule(const std::optional<std::string>& spec, const ModelInfo& info) {
  return spec ? resolve_schedule(*spec) : schedule::ComputeSchedule::parse(info.sampler_defaults.schedule);
}

std::string shipped_search_path() {
  std::string s;
  for (const auto& dir : folders()) s += (s.empty() ? "" : ", ") + dir.string();
  return s;
}

}  // namespace ditgen::cli
