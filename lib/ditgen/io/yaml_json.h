// YAML documents as JSON values, so one validator (nlohmann::json) serves configs written either way.
#pragma once

#include <string>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

namespace ditgen::io {

// Maps, sequences and scalars; unquoted scalars become bools, integers or floats when they read as one.
// Error(Input) for documents nested deeper than 64 levels.
nlohmann::json yaml_to_json(const YAML::Node& node);

// Parses YAML text (Error(Input) naming `source` on a syntax error) and converts it.
nlohmann::json parse_yaml(const std::string& text, const std::string& source);

}  // namespace ditgen::io
