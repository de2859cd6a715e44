#include "shipped.h"

#include <unistd.h>

#include <cstdlib>
#include <vector>

namespace ditgen::cli {

namespace {

std::vector<std::filesystem::path> folders() {
  std::vector<std::filesystem::path> out;
  if (const char* env = std::getenv("DITGEN_MODELS_DIR"); env && *env) out.emplace_back(env);
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    out.push_back(exe.parent_path().parent_path().parent_path() / "models");  // <repo>/build/bin/ditgen
    out.push_back(exe.parent_path().parent_path() / "share" / "ditgen" / "models");  // <prefix>/bin/ditgen
  }
  out.emplace_back(DITGEN_SOURCE_DIR "/models");
  return out;
}

}  // namespace

std::optional<std::filesystem::path> find_shipped(const std::string& name) {
  for (const auto& dir : folders())
    if (std::filesystem::is_regular_file(dir / name)) return dir / name;
  return std::nullopt;
}

std::vector<std::filesystem::path> schedule_preset_dirs() {
  std::vector<std::filesystem::path> out;
  if (const char* env = std::getenv("DITGEN_SCHEDULES_DIR"); env && *env) out.emplace_back(env);
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    out.push_back(exe.parent_path().parent_path().parent_path() / "configs" / "schedules");  // <repo>/build/bin
    out.push_back(exe.parent_path().parent_path() / "share" / "ditgen" / "schedules");
  }
  out.emplace_back(DITGEN_SOURCE_DIR "/configs/schedules");
  return out;
}

schedule::ComputeSchedule resolve_schedule(const std::string& spec) {
  return schedule::resolve_schedule(spec, schedule_preset_dirs());
}

std::string shipped_search_path() {
  std::string s;
  for (const auto& dir : folders()) s += (s.empty() ? "" : ", ") + dir.string();
  return s;
}

}  // namespace ditgen::cli
