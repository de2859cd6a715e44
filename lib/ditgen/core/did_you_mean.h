// "Did you mean ...?": the known names closest to a word the user mistyped (class names, for now).
#pragma once

#include <string>
#include <vector>

namespace ditgen {

// The candidates closest to `word`, case-insensitively, by edit distance (a swap of neighbours counts as
// one edit) to the whole name or to one of its words ("boot" -> "Ankle boot", "snekaer" -> "Sneaker").
// Ties are all returned, in the candidates' order; names further than about a third of the word's length
// are not, so an unrelated word gets none.
std::vector<std::string> closest_names(const std::string& word, const std::vector<std::string>& candidates);

// " (did you mean 'Sneaker'?)", " (did you mean 'T-shirt/top' or 'Shirt'?)", or "" when nothing is close.
std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace ditgen
