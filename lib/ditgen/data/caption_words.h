// What the still and the moving scene captions share: reading a caption word by word with errors that quote
// it, the "COLOUR CLASS" an item begins with, and joining item phrases. No LibTorch (the parsers are fuzzed).
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace ditgen::data {

// A caption's words, lowercased, with commas as words of their own and a final full stop dropped.
class CaptionWords {
 public:
  explicit CaptionWords(const std::string& text);

  bool done() const { return pos_ >= words_.size(); }
  const std::string& peek() const;       // "(end)" when done
  std::string take();                    // the next word, or "(end)"
  bool accept(const std::string& word);  // takes the next word when it is `word`
  // Takes the next word when it is one of `options`; that word, or "" (nothing taken).
  std::string accept_any(const std::vector<std::string>& options);

  // Error(Input): "caption 'TEXT': problem", the text cut at 120 characters.
  [[noreturn]] void fail(const std::string& problem) const;

 private:
  std::string text_;
  std::vector<std::string> words_;
  size_t pos_ = 0;
};

// An item's "[a|an] COLOUR CLASS" (`ankle boot` is two words): {colour, class}, or fail() naming the fault.
std::pair<int, int> read_coloured_item(CaptionWords& words);

// What a caption lists: where "there is"/"there are" may lead, which words join items, how many there may be.
struct ItemList {
  std::string example;               // a caption to suggest when there is none
  std::vector<std::string> joiners;  // e.g. {"and", ","}: any run of them joins two items
  size_t max_items = 1;
  std::string too_many;  // why more than max_items are refused
};

// Reads a whole caption: an optional "there is"/"there are", then items joined as `list` says, each read
// by `read_one` (which keeps what it reads). fail()s for no items, a missing joiner, a trailing joiner, or
// too many items.
void read_item_list(CaptionWords& words, const ItemList& list, const std::function<void()>& read_one);

// "a COLOUR CLASS" as the canonical captions write it.
std::string coloured_item_phrase(int colour, int cls);

// phrases joined by `between`, the last two by `last` ("A, B and C").
std::string join_phrases(const std::vector<std::string>& phrases, const std::string& between, const std::string& last);

// How a paraphrase lists its item phrases (each beginning "a COLOUR CLASS").
struct Listing {
  bool articles = true;   // keep each phrase's leading "a "
  bool there_is = false;  // lead with "there is "
  std::string between = " and ", last = " and ";
};

// A paraphrase from its phrases and listing, never the canonical caption: one that came out canonical loses
// its articles (so the canonical share of training captions is exactly the share that asked for it).
std::string paraphrase_of(const std::string& canonical, const std::vector<std::string>& phrases, Listing listing);

}  // namespace ditgen::data
