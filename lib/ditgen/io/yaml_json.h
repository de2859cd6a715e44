// YAML documents as JSON values, so one validator (nlohmann::json) serves configs written either way.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

namespace ditgen::io {

constexpr std::size_t kMaxYamlFileBytes = std::size_t{1} << 20;  // configs, model specs and presets are tiny

// Maps, sequences and scalars; unquoted scalars become bools, integers or floats when they read as one.
// Error(Input) for documents nested deeper than 64 levels and for keys that are not scalars.
nlohmann::json yaml_to_json(const YAML::Node& node);

// Parses YAML text (Error(Input) naming `source` on a syntax error) and converts it.
nlohmann::json parse_yaml(const std::string& text, const std::string& source);

// Parses a YAML file: a regular file of at most kMaxYamlFileBytes (else Error(Input)). For readers that
// walk the YAML nodes themselves; errors name the file.
YAML::Node load_yaml_file(const std::filesystem::path& path);

// load_yaml_file, converted.
nlohmann::json read_yaml_file(const std::filesystem::path& path);

}  // namespace ditgen::io
