// Logging for the library and CLI. A thin, torch-free front to spdlog: LibTorch bundles its own fmt,
// which clashes with the system spdlog's, so only core/log.cpp (built without LibTorch) sees spdlog.
#pragma once

#include <string>

namespace ditgen::log {

enum class Level { Debug, Info, Warn, Error };

// Sends log lines to stderr as "level: message" at `level` and above (the CLI calls this once).
void setup_stderr(Level level);
bool enabled(Level level);
void write(Level level, const std::string& message);

inline void debug(const std::string& m) { write(Level::Debug, m); }
inline void info(const std::string& m) { write(Level::Info, m); }
inline void warn(const std::string& m) { write(Level::Warn, m); }
inline void error(const std::string& m) { write(Level::Error, m); }

}  // namespace ditgen::log
