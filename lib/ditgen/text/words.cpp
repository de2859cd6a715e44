#include "ditgen/text/words.h"

#include <algorithm>

namespace ditgen::text {

namespace {
bool word_byte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '\'' || c >= 0x80;
}
}  // namespace

bool is_vocabulary_word(const std::string& word) {
  if (word.empty() || word.size() > 32) return false;
  return std::all_of(word.begin(), word.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '\'';
  });
}

std::vector<std::string> split_words(const std::string& prompt) {
  std::vector<std::string> words;
  std::string word;
  auto flush = [&] {
    const size_t first = word.find_first_not_of("-'"), last = word.find_last_not_of("-'");
    if (first != std::string::npos) words.push_back(word.substr(first, last - first + 1));
    word.clear();
  };
  for (const char ch : prompt) {
    const auto c = static_cast<unsigned char>(ch);
    if (!word_byte(c)) {
      flush();
      continue;
    }
    word.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : ch);
  }
  flush();
  return words;
}

}  // namespace ditgen::text
