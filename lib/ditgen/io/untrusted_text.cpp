#include "ditgen/io/untrusted_text.h"

#include <cstdint>
#include <cstdio>

namespace ditgen::io {

bool is_utf8(std::string_view s) {
  static constexpr uint32_t kMinCodePoint[4] = {0, 0x80, 0x800, 0x10000};
  std::size_t i = 0;
  while (i < s.size()) {
    const unsigned char lead = s[i];
    std::size_t extra;
    uint32_t cp;
    if (lead < 0x80) {
      ++i;
      continue;
    } else if ((lead & 0xe0) == 0xc0) {
      extra = 1, cp = lead & 0x1f;
    } else if ((lead & 0xf0) == 0xe0) {
      extra = 2, cp = lead & 0x0f;
    } else if ((lead & 0xf8) == 0xf0) {
      extra = 3, cp = lead & 0x07;
    } else {
      return false;
    }
    if (s.size() - i <= extra) return false;
    for (std::size_t k = 1; k <= extra; ++k) {
      const unsigned char b = s[i + k];
      if ((b & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (b & 0x3f);
    }
    if (cp < kMinCodePoint[extra] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += extra + 1;
  }
  return true;
}

std::string excerpt(std::string_view text, std::size_t max_bytes) {
  const bool utf8 = is_utf8(text);
  std::size_t end = std::min(text.size(), max_bytes);
  // Do not cut a character in two: back up to its first byte.
  if (utf8 && end < text.size())
    while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xc0) == 0x80) --end;
  std::string out;
  for (std::size_t i = 0; i < end; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f || (c >= 0x80 && !utf8)) {
      char escaped[5];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", c);
      out += escaped;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (end < text.size()) out += "...";
  return out;
}

std::string json_excerpt(const nlohmann::json& value, std::size_t max_bytes) {
  return excerpt(value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), max_bytes);
}

}  // namespace ditgen::io
