#include "ditgen/text/tokenizer.h"

#include <algorithm>

#include "ditgen/core/error.h"

namespace ditgen::text {

Tokenizer::Tokenizer(std::vector<std::string> vocabulary, int max_tokens)
    : words_(std::move(vocabulary)), max_tokens_(max_tokens) {
  for (size_t i = 0; i < words_.size(); ++i) ids_.emplace(words_[i], kFirstWordId + static_cast<int64_t>(i));
}

std::vector<int64_t> Tokenizer::word_ids(const std::string& word) const {
  if (const auto known = ids_.find(word); known != ids_.end()) return {known->second};
  // "top-left" where the vocabulary has "top" and "left".
  std::vector<int64_t> parts;
  for (size_t begin = 0; word.find('-') != std::string::npos && begin <= word.size();) {
    const size_t end = std::min(word.find('-', begin), word.size());
    const auto known = ids_.find(word.substr(begin, end - begin));
    if (known == ids_.end()) return {};
    parts.push_back(known->second);
    begin = end + 1;
  }
  return parts;
}

Tokens Tokenizer::encode(const std::string& prompt) const {
  Tokens out;
  out.ids.push_back(kStartId);
  for (const std::string& word : split_words(prompt)) {
    const std::vector<int64_t> ids = word_ids(word);
    if (!ids.empty()) {
      out.ids.insert(out.ids.end(), ids.begin(), ids.end());
    } else if (std::find(out.unknown.begin(), out.unknown.end(), word) == out.unknown.end()) {
      out.unknown.push_back(word);
    }
  }
  const int64_t words = static_cast<int64_t>(out.ids.size()) - 1;
  if (words > max_tokens_ - 1)
    throw Error(ErrorKind::Usage, "the prompt has " + std::to_string(words) + " words this model knows; it reads at most " +
                                      std::to_string(max_tokens_ - 1));
  return out;
}

at::Tensor Tokenizer::padded(const std::vector<int64_t>& ids) const {
  TORCH_CHECK(static_cast<int64_t>(ids.size()) <= max_tokens_, "more ids than max_tokens");
  at::Tensor out = at::full({max_tokens_}, kPadId, at::kLong);  // [L]
  std::copy(ids.begin(), ids.end(), out.data_ptr<int64_t>());
  return out;
}

at::Tensor Tokenizer::encode_batch(const std::vector<std::string>& prompts) const {
  std::vector<at::Tensor> rows;
  for (const std::string& p : prompts) rows.push_back(padded(encode(p).ids));
  return at::stack(rows);  // [B, L]
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string out;
  for (const int64_t id : ids) {
    if (id < kFirstWordId || id >= kFirstWordId + static_cast<int64_t>(words_.size())) continue;
    out += (out.empty() ? "" : " ") + words_[id - kFirstWordId];
  }
  return out;
}

}  // namespace ditgen::text
