// Text from files and users: a UTF-8 check, and short excerpts to quote in messages, so one hostile value
// (a megabyte line, control bytes, Latin-1) cannot turn an error into a flood or break its one line.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace ditgen::io {

// Well-formed UTF-8: no overlong forms, surrogates or code points past U+10FFFF.
bool is_utf8(std::string_view text);

// `text` for a message: control bytes (and, in text that is not UTF-8, bytes above 0x7f) written as \xNN,
// cut after `max_bytes` bytes of the input (on a character boundary) with "..." appended.
std::string excerpt(std::string_view text, std::size_t max_bytes = 80);

// A parsed value for a message: its JSON text, excerpted.
std::string json_excerpt(const nlohmann::json& value, std::size_t max_bytes = 80);

}  // namespace ditgen::io
