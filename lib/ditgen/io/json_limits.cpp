#include "ditgen/io/json_limits.h"

#include "ditgen/io/untrusted_text.h"

namespace ditgen::io {

namespace {

// Counts brackets outside strings. Text the parser would refuse may miscount, but only past the point
// where the parser stops, so what it builds never nests deeper than counted here.
bool nested_deeper_than(std::string_view text, int limit) {
  int depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;  // skips the escaped character, a quote included
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

}  // namespace

nlohmann::json parse_json(std::string_view text, ErrorKind kind, const std::string& where,
                          const nlohmann::json::parser_callback_t& callback) {
  if (nested_deeper_than(text, kMaxJsonDepth))
    throw Error(kind, where + " is nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  try {
    return nlohmann::json::parse(text.begin(), text.end(), callback);
  } catch (const nlohmann::json::exception& e) {
    throw Error(kind, where + " is not valid JSON: " + excerpt(e.what(), 200));
  }
}

}  // namespace ditgen::io
