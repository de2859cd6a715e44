#include "ditgen/data/scene_captions.h"

#include <algorithm>
#include <cctype>
#include <sstream>
#include <vector>

#include "ditgen/core/error.h"
#include "ditgen/data/scene_random.h"

namespace ditgen::data {

namespace {

// The words a paraphrase may use for a cell: the canonical name, or "upper"/"lower" and "middle"/"centre".
std::string position_words(Cell cell, SceneRandom& random, bool vary) {
  if (!vary) return cell_name(cell);
  switch (cell) {
    case Cell::TopLeft: return "upper left";
    case Cell::TopRight: return "upper right";
    case Cell::BottomLeft: return "lower left";
    case Cell::BottomRight: return "lower right";
    case Cell::Center: break;
  }
  return random.chance(1, 2) ? "middle" : "centre";
}

std::string list_items(const std::vector<std::string>& phrases, const std::string& between, const std::string& last) {
  std::string text;
  for (size_t i = 0; i < phrases.size(); ++i) {
    if (i > 0) text += i + 1 == phrases.size() ? last : between;
    text += phrases[i];
  }
  return text;
}

// Where a caption's words are read from, for error messages that quote the caption.
class Words {
 public:
  explicit Words(const std::string& text) : text_(text) {
    std::string spaced;
    for (char c : text) {
      const unsigned char u = static_cast<unsigned char>(c);
      if (c == ',') spaced += " , ";
      else spaced += static_cast<char>(std::tolower(u));
    }
    while (!spaced.empty() && (std::isspace(static_cast<unsigned char>(spaced.back())) || spaced.back() == '.'))
      spaced.pop_back();  // a final full stop
    std::istringstream in(spaced);
    for (std::string w; in >> w;) words_.push_back(w);
  }

  bool done() const { return pos_ >= words_.size(); }
  const std::string& peek() const {
    static const std::string end = "(end)";
    return done() ? end : words_[pos_];
  }
  std::string take() { return done() ? peek() : words_[pos_++]; }
  bool accept(const std::string& word) {
    if (done() || words_[pos_] != word) return false;
    ++pos_;
    return true;
  }

  [[noreturn]] void fail(const std::string& problem) const {
    const std::string quoted = text_.size() > 120 ? text_.substr(0, 117) + "..." : text_;
    throw Error(ErrorKind::Input, "caption '" + quoted + "': " + problem);
  }

 private:
  std::string text_;
  std::vector<std::string> words_;
  size_t pos_ = 0;
};

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

Cell read_position(Words& words) {
  const std::string first = words.take();
  if (first == "center" || first == "centre" || first == "middle") return Cell::Center;
  const bool top = first == "top" || first == "upper", bottom = first == "bottom" || first == "lower";
  if (!top && !bottom)
    words.fail("expected a position (top left, top right, bottom left, bottom right, center), found '" + first + "'");
  const std::string side = words.take();
  if (side != "left" && side != "right")
    words.fail("expected 'left' or 'right' after '" + first + "', found '" + side + "'");
  if (top) return side == "left" ? Cell::TopLeft : Cell::TopRight;
  return side == "left" ? Cell::BottomLeft : Cell::BottomRight;
}

SceneItem read_item(Words& words) {
  if (!words.accept("a")) words.accept("an");
  SceneItem item;
  const std::string colour = words.take();
  if (auto c = colour_from_name(colour)) {
    item.colour = *c;
  } else if (class_from_word(colour) || colour == "ankle") {
    words.fail("'" + colour + "' needs a colour before it (" + all_colours() + ")");
  } else {
    words.fail("unknown colour '" + colour + "' (colours: " + all_colours() + ")");
  }
  std::string cls = words.take();
  if (cls == "ankle" && words.accept("boot")) cls = "ankle boot";
  const auto c = class_from_word(cls);
  if (!c) words.fail("unknown item '" + cls + "' (items: " + all_classes() + ")");
  item.cls = *c;
  if (!words.accept("in") && !words.accept("at"))
    words.fail("expected 'in the POSITION' after '" + colour + " " + cls + "', found '" + words.peek() + "'");
  words.accept("the");
  item.cell = read_position(words);
  return item;
}

}  // namespace

std::string canonical_caption(const Scene& scene) {
  std::vector<std::string> phrases;
  for (const SceneItem& item : scene.items)
    phrases.push_back(std::string("a ") + colour_name(item.colour) + " " + class_word(item.cls) + " in the " +
                      cell_name(item.cell));
  return list_items(phrases, " and ", " and ");
}

std::string paraphrase(const Scene& scene, uint64_t seed) {
  const std::string canonical = canonical_caption(scene);
  SceneRandom random(seed);
  if (random.chance(1, 2)) return canonical;
  std::vector<SceneItem> items = scene.items;
  if (random.chance(1, 2)) random.shuffle(items.begin(), items.end());
  const bool articles = random.chance(2, 3);
  const bool there_is = random.chance(1, 4);
  const int joining = random.below(3);  // "and" throughout, commas then "and", commas only
  std::vector<std::string> phrases;
  for (const SceneItem& item : items) {
    const bool vary = random.chance(1, 2);
    phrases.push_back(std::string("a ") + colour_name(item.colour) + " " + class_word(item.cls) +
                      " in the " + position_words(item.cell, random, vary));
  }
  auto compose = [&](bool with_articles) {
    std::vector<std::string> p = phrases;
    if (!with_articles)
      for (std::string& phrase : p)
        if (phrase.rfind("a ", 0) == 0) phrase.erase(0, 2);
    const std::string list = joining == 0   ? list_items(p, " and ", " and ")
                             : joining == 1 ? list_items(p, ", ", " and ")
                                            : list_items(p, ", ", ", ");
    return (there_is ? "there is " : "") + list;
  };
  const std::string text = compose(articles);
  // Half the captions are canonical, and only those: a variant that came out canonical loses its articles.
  return text == canonical ? compose(false) : text;
}

std::vector<std::string> benchmark_prompts() {
  std::vector<std::string> prompts;
  for (const Scene& scene : benchmark_layouts()) prompts.push_back(canonical_caption(scene));
  return prompts;
}

Scene parse_caption(const std::string& text) {
  Words words(text);
  if (words.done()) words.fail("no items (say e.g. 'a red sneaker in the top left')");
  if (words.accept("there") && !words.accept("is")) words.accept("are");
  Scene scene;
  while (true) {
    scene.items.push_back(read_item(words));
    if (words.done()) break;
    if (scene.items.size() == static_cast<size_t>(kMaxItems))
      words.fail("more than 4 items (a scene has four cells)");
    bool joined = false;
    while (words.accept(",") || words.accept("and")) joined = true;
    if (!joined) words.fail("expected 'and' or ',' before '" + words.peek() + "'");
    if (words.done()) words.fail("the caption ends with 'and' or ',' instead of an item");
  }
  try {
    check_scene(scene);
  } catch (const Error& e) {
    words.fail(e.what());
  }
  sort_by_cell(scene);
  return scene;
}

}  // namespace ditgen::data
