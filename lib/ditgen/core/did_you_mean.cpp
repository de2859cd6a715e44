#include "ditgen/core/did_you_mean.h"

#include <algorithm>
#include <cctype>

namespace ditgen {

namespace {

std::string lower(const std::string& s) {
  std::string out = s;
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

// Optimal string alignment distance: insertions, deletions, substitutions and swaps of neighbours.
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i)
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1])});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}

// The distance to the whole name or its closest word (words split at anything but letters and digits).
size_t name_distance(const std::string& word, const std::string& name) {
  size_t best = edit_distance(word, name);
  std::string part;
  for (size_t i = 0; i <= name.size(); ++i) {
    if (i < name.size() && std::isalnum(static_cast<unsigned char>(name[i]))) {
      part += name[i];
    } else if (!part.empty()) {
      best = std::min(best, edit_distance(word, part));
      part.clear();
    }
  }
  return best;
}

}  // namespace

std::vector<std::string> closest_names(const std::string& word, const std::vector<std::string>& candidates) {
  const std::string key = lower(word);
  if (key.empty() || key.size() > 256) return {};  // nothing to compare, or no name's typo
  size_t best = (key.size() + 1) / 3;  // the furthest a suggestion may be
  std::vector<std::string> out;
  for (const std::string& name : candidates) {
    const size_t d = name_distance(key, lower(name));
    if (d < best) out.clear();
    if (d <= best) {
      best = d;
      out.push_back(name);
    }
  }
  return out;
}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates) {
  const std::vector<std::string> names = closest_names(word, candidates);
  if (names.empty()) return "";
  std::string out = " (did you mean ";
  for (size_t i = 0; i < names.size(); ++i)
    out += (i == 0 ? "" : i + 1 == names.size() ? " or " : ", ") + ("'" + names[i] + "'");
  return out + "?)";
}

}  // namespace ditgen
