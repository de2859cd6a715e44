#include "ditgen/data/caption_words.h"

#include <algorithm>
#include <cctype>
#include <sstream>

#include "ditgen/core/error.h"
#include "ditgen/data/scene_grammar.h"

namespace ditgen::data {

namespace {

std::string all_colours() {
  std::string names;
  for (int c = 0; c < kSceneColours; ++c) names += std::string(c ? ", " : "") + colour_name(c);
  return names;
}

std::string all_classes() {
  std::string names;
  for (int c = 0; c < kSceneClasses; ++c) names += std::string(c ? ", " : "") + class_word(c);
  return names;
}

}  // namespace

CaptionWords::CaptionWords(const std::string& text) : text_(text) {
  std::string spaced;
  for (char c : text) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (c == ',')
      spaced += " , ";
    else
      spaced += static_cast<char>(std::tolower(u));
  }
  while (!spaced.empty() && (std::isspace(static_cast<unsigned char>(spaced.back())) || spaced.back() == '.'))
    spaced.pop_back();  // a final full stop
  std::istringstream in(spaced);
  for (std::string w; in >> w;) words_.push_back(w);
}

const std::string& CaptionWords::peek() const {
  static const std::string end = "(end)";
  return done() ? end : words_[pos_];
}

std::string CaptionWords::take() { return done() ? peek() : words_[pos_++]; }

bool CaptionWords::accept(const std::string& word) {
  if (done() || words_[pos_] != word) return false;
  ++pos_;
  return true;
}

std::string CaptionWords::accept_any(const std::vector<std::string>& options) {
  if (done() || std::find(options.begin(), options.end(), words_[pos_]) == options.end()) return "";
  return words_[pos_++];
}

void CaptionWords::fail(const std::string& problem) const {
  const std::string quoted = text_.size() > 120 ? text_.substr(0, 117) + "..." : text_;
  throw Error(ErrorKind::Input, "caption '" + quoted + "': " + problem);
}

std::pair<int, int> read_coloured_item(CaptionWords& words) {
  if (!words.accept("a")) words.accept("an");
  const std::string colour = words.take();
  const auto c = colour_from_name(colour);
  if (!c) {
    if (class_from_word(colour) || colour == "ankle")
      words.fail("'" + colour + "' needs a colour before it (" + all_colours() + ")");
    words.fail("unknown colour '" + colour + "' (colours: " + all_colours() + ")");
  }
  std::string cls = words.take();
  if (cls == "ankle" && words.accept("boot")) cls = "ankle boot";
  const auto k = class_from_word(cls);
  if (!k) words.fail("unknown item '" + cls + "' (items: " + all_classes() + ")");
  return {*c, *k};
}

void read_item_list(CaptionWords& words, const ItemList& list, const std::function<void()>& read_one) {
  if (words.done()) words.fail("no items (say e.g. '" + list.example + "')");
  if (words.accept("there") && !words.accept("is")) words.accept("are");
  std::vector<std::string> quoted;
  for (const std::string& j : list.joiners) quoted.push_back("'" + j + "'");
  const std::string joiners = join_phrases(quoted, ", ", " or ");
  for (size_t count = 1;; ++count) {
    read_one();
    if (words.done()) return;
    if (count == list.max_items) words.fail(list.too_many);
    bool joined = false;
    while (!words.accept_any(list.joiners).empty()) joined = true;
    if (!joined) words.fail("expected " + joiners + " before '" + words.peek() + "'");
    if (words.done()) words.fail("the caption ends with " + joiners + " instead of an item");
  }
}

std::string coloured_item_phrase(int colour, int cls) {
  return std::string("a ") + colour_name(colour) + " " + class_word(cls);
}

std::string join_phrases(const std::vector<std::string>& phrases, const std::string& between, const std::string& last) {
  std::string text;
  for (size_t i = 0; i < phrases.size(); ++i) {
    if (i > 0) text += i + 1 == phrases.size() ? last : between;
    text += phrases[i];
  }
  return text;
}

namespace {

std::string compose(std::vector<std::string> phrases, const Listing& listing) {
  if (!listing.articles)
    for (std::string& phrase : phrases)
      if (phrase.rfind("a ", 0) == 0) phrase.erase(0, 2);
  return (listing.there_is ? "there is " : "") + join_phrases(phrases, listing.between, listing.last);
}

}  // namespace

std::string paraphrase_of(const std::string& canonical, const std::vector<std::string>& phrases, Listing listing) {
  const std::string text = compose(phrases, listing);
  if (text != canonical) return text;
  listing.articles = false;
  return compose(phrases, listing);
}

}  // namespace ditgen::data
