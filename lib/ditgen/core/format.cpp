#include "ditgen/core/format.h"

#include <cmath>
#include <cstdio>

namespace ditgen {

std::string format_number(double value, int significant) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char text[64];
  // %g switches to an exponent once the integer part has more digits than asked for; print those whole.
  if (std::fabs(value) >= std::pow(10.0, significant - 1) && std::fabs(value) < 1e15)
    std::snprintf(text, sizeof text, "%.0f", value);
  else
    std::snprintf(text, sizeof text, "%.*g", significant, value);
  return text;
}

std::string format_seconds(double seconds) {
  if (!std::isfinite(seconds) || seconds < 59.95) return format_number(seconds) + " s";
  if (seconds >= 100 * 3600.0) return format_number(seconds / 3600) + " h";
  char text[64];
  const auto whole = static_cast<long long>(std::llround(seconds));
  if (whole < 3600)
    std::snprintf(text, sizeof text, "%lld min %02lld s", whole / 60, whole % 60);
  else
    std::snprintf(text, sizeof text, "%lld h %02lld min", whole / 3600, whole % 3600 / 60);
  return text;
}

std::string format_numbers(const std::vector<double>& values, int significant) {
  std::string out = "[";
  for (size_t i = 0; i < values.size(); ++i) out += (i ? ", " : "") + format_number(values[i], significant);
  return out + "]";
}

}  // namespace ditgen
