// Shared by the fuzz targets: the parsers read files, so each input is written to a scratch file first.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

namespace ditgen::fuzz {

// A per-process scratch file in /dev/shm (or the temp folder), rewritten for every input.
inline const std::filesystem::path& scratch_path() {
  static const std::filesystem::path path = [] {
    const std::filesystem::path dir = std::filesystem::exists("/dev/shm") ? "/dev/shm" : std::filesystem::temp_directory_path();
    return dir / ("ditgen-fuzz-" + std::to_string(::getpid()));
  }();
  return path;
}

inline const std::filesystem::path& write_scratch(const uint8_t* data, size_t size) {
  std::FILE* f = std::fopen(scratch_path().c_str(), "wb");
  if (!f) __builtin_trap();
  if (size && std::fwrite(data, 1, size, f) != size) __builtin_trap();
  std::fclose(f);
  return scratch_path();
}

// Prints a parsed value as ditgen's commands do (recursing once per level), into nothing.
inline void print_json(const nlohmann::json& value) {
  volatile std::size_t sink = value.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).size();
  (void)sink;
}

}  // namespace ditgen::fuzz
