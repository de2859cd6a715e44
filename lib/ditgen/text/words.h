// What a word of a prompt is (LibTorch-free, so the model-config parser and its fuzz target can use it).
#pragma once

#include <string>
#include <vector>

namespace ditgen::text {

// Whether `word` can be a vocabulary word: 1..32 bytes of lowercase ASCII letters, digits, '-' and '\''.
bool is_vocabulary_word(const std::string& word);

// The words of a prompt: ASCII letters lowercased, split at every byte that is not a letter, digit, '-',
// '\'' or non-ASCII, with leading and trailing '-' and '\'' trimmed ("A Red T-shirt, top-left!" -> a, red,
// t-shirt, top-left). Non-ASCII bytes stay inside their word (which no vocabulary holds).
std::vector<std::string> split_words(const std::string& prompt);

}  // namespace ditgen::text
