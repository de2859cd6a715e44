#include "ditgen/core/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace ditgen::log {

namespace {

spdlog::level::level_enum to_spdlog(Level level) {
  switch (level) {
    case Level::Debug: return spdlog::level::debug;
    case Level::Info: return spdlog::level::info;
    case Level::Warn: return spdlog::level::warn;
    case Level::Error: return spdlog::level::err;
  }
  return spdlog::level::info;
}

// Until the CLI sets a sink up, the library stays silent (library users choose where logs go).
std::shared_ptr<spdlog::logger>& logger() {
  static std::shared_ptr<spdlog::logger> instance = [] {
    auto l = std::make_shared<spdlog::logger>("ditgen");
    l->set_level(spdlog::level::off);
    return l;
  }();
  return instance;
}

}  // namespace

void setup_stderr(Level level) {
  auto l = spdlog::stderr_color_mt("ditgen-stderr");
  l->set_pattern("%^%l%$: %v");
  l->set_level(to_spdlog(level));
  logger() = l;
}

bool enabled(Level level) { return logger()->should_log(to_spdlog(level)); }

void write(Level level, const std::string& message) { logger()->log(to_spdlog(level), message); }

}  // namespace ditgen::log
