// Prompt text to token ids for text models: lowercase words looked up in the model's vocabulary.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include <ATen/ATen.h>

#include "ditgen/models/config.h"
#include "ditgen/text/words.h"

namespace ditgen::text {

constexpr int64_t kPadId = 0;    // fills a prompt's ids up to max_tokens; never attended to
constexpr int64_t kStartId = 1;  // begins every prompt; alone it is the empty prompt, the null condition
constexpr int64_t kFirstWordId = 2;

// A prompt's ids: the start id, then one id per known word (no padding).
struct Tokens {
  std::vector<int64_t> ids;
  std::vector<std::string> unknown;  // words not in the vocabulary, in prompt order (ignored), each once
};

class Tokenizer {
 public:
  // `vocabulary` as a model config holds it (validated there); a prompt keeps at most max_tokens - 1 words.
  Tokenizer(std::vector<std::string> vocabulary, int max_tokens);
  // A text model's (its config's vocabulary and max_tokens).
  explicit Tokenizer(const TextConfig& text) : Tokenizer(text.vocabulary, text.max_tokens) {}

  // Error(Usage) when the prompt has more known words than max_tokens - 1 (nothing is cut silently). A
  // hyphenated word the vocabulary lacks counts as its parts when it has them all ("top-left").
  Tokens encode(const std::string& prompt) const;
  // Prompts as one padded batch. -> [B, max_tokens] int64
  at::Tensor encode_batch(const std::vector<std::string>& prompts) const;
  // The known words of ids, joined by spaces (start and padding ids dropped): encode(decode(ids)) == ids.
  std::string decode(const std::vector<int64_t>& ids) const;
  // Ids padded to max_tokens. -> [max_tokens] int64
  at::Tensor padded(const std::vector<int64_t>& ids) const;

  int max_tokens() const { return max_tokens_; }
  const std::vector<std::string>& vocabulary() const { return words_; }

 private:
  // A word's ids: its own, or those of its '-'-separated parts when it is unknown and they are all known;
  // none when unknown.
  std::vector<int64_t> word_ids(const std::string& word) const;

  std::vector<std::string> words_;
  std::unordered_map<std::string, int64_t> ids_;
  int max_tokens_;
};

}  // namespace ditgen::text
