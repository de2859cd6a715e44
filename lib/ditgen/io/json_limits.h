// JSON from files and users (prompt lines, PNG records, safetensors headers, model metadata), parsed with a
// nesting limit. nlohmann parses and destroys without recursion, but its dump(), copy and comparison recurse
// once per level: a value nested 60,000 deep would overflow the stack wherever it is used later.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "ditgen/core/error.h"

namespace ditgen::io {

constexpr int kMaxJsonDepth = 64;  // ditgen's own documents nest 4 levels at most

// Parses `text`, refusing nesting deeper than kMaxJsonDepth before the parser runs. Failures throw
// Error(kind) "WHERE is not valid JSON: PARSER MESSAGE" (the message cut short) or
// "WHERE is nested deeper than 64 levels". `callback` is nlohmann's parser callback.
nlohmann::json parse_json(std::string_view text, ErrorKind kind, const std::string& where,
                          const nlohmann::json::parser_callback_t& callback = nullptr);

}  // namespace ditgen::io
