#include "ditgen/data/moving_captions.h"

#include <algorithm>
#include <sstream>
#include <tuple>

#include "ditgen/core/error.h"
#include "ditgen/data/caption_words.h"
#include "ditgen/data/scene_random.h"

namespace ditgen::data {

namespace {

// The verbs a caption may use: participles (which "there is" can lead) and the finite verbs ("while" joins).
const std::vector<std::string> kParticiples = {"moving", "going", "heading"};
const std::vector<std::string> kFiniteVerbs = {"moves", "goes", "heads"};
const std::vector<std::string> kParsedVerbs = {"moving", "going", "heading", "moves", "goes", "heads", "move", "head"};
const std::vector<std::string> kTowards = {"to", "towards", "toward"};

// The words a paraphrase may use for a direction: the canonical one, "to the" or "towards the" before left and
// right, or the "-wards" form.
std::string direction_words(Direction d, SceneRandom& random) {
  const std::string name = direction_name(d);
  const bool sideways = d == Direction::Left || d == Direction::Right;
  switch (random.below(sideways ? 4 : 2)) {
    case 0: return name;
    case 1: return name + "wards";
    case 2: return "to the " + name;
    default: return "towards the " + name;
  }
}

Direction read_direction(CaptionWords& words) {
  if (const std::string to = words.accept_any(kTowards); !to.empty()) {
    words.accept("the");
    const std::string side = words.take();
    if (side != "left" && side != "right")
      words.fail("expected 'left' or 'right' after '" + to + "', found '" + side + "'");
    return *direction_from_name(side);
  }
  const std::string word = words.take();
  std::string name = word;
  for (const std::string ending : {"wards", "ward"})  // "leftwards", "upward"
    if (name.size() > ending.size() && name.ends_with(ending)) {
      name.erase(name.size() - ending.size());
      break;
    }
  const auto d = direction_from_name(name);
  if (!d) words.fail("expected a direction (left, right, up, down), found '" + word + "'");
  return *d;
}

MovingItem read_moving_item(CaptionWords& words) {
  MovingItem item;
  std::tie(item.colour, item.cls) = read_coloured_item(words);
  if (words.accept_any(kParsedVerbs).empty())
    words.fail("expected 'moving DIRECTION' after '" + std::string(colour_name(item.colour)) + " " +
               class_word(item.cls) + "', found '" + words.peek() + "'");
  item.direction = read_direction(words);
  return item;
}

}  // namespace

std::string canonical_moving_caption(const MovingScene& scene) {
  std::vector<std::string> phrases;
  for (const MovingItem& item : scene.items)
    phrases.push_back(coloured_item_phrase(item.colour, item.cls) + " moving " + direction_name(item.direction));
  return join_phrases(phrases, " and ", " and ");
}

std::string moving_paraphrase(const MovingScene& scene, uint64_t seed) {
  const std::string canonical = canonical_moving_caption(scene);
  SceneRandom random(seed);
  if (random.chance(1, 2)) return canonical;
  std::vector<MovingItem> items = scene.items;
  if (random.chance(1, 2)) random.shuffle(items.begin(), items.end());
  const bool finite = random.chance(1, 2);
  const std::vector<std::string>& verbs = finite ? kFiniteVerbs : kParticiples;
  const std::string verb = verbs[static_cast<size_t>(random.below(static_cast<int>(verbs.size())))];
  Listing listing;
  listing.articles = random.chance(2, 3);
  listing.there_is = !finite && random.chance(1, 4);
  const int joining = random.below(finite ? 3 : 2);  // "and", a comma, "while" (which wants a verb)
  listing.last = joining == 0 ? " and " : joining == 1 ? ", " : " while ";
  std::vector<std::string> phrases;
  for (const MovingItem& item : items)
    phrases.push_back(coloured_item_phrase(item.colour, item.cls) + " " + verb + " " +
                      direction_words(item.direction, random));
  return paraphrase_of(canonical, phrases, listing);
}

MovingScene parse_moving_caption(const std::string& text) {
  CaptionWords words(text);
  MovingScene scene;
  const ItemList list{"a red sneaker moving left",
                      {"and", ",", "while"},
                      kMaxMovingItems,
                      "more than 2 items (a clip has one or two)"};
  read_item_list(words, list, [&] { scene.items.push_back(read_moving_item(words)); });
  try {
    check_moving_layout(scene);
  } catch (const Error& e) {
    words.fail(e.what());
  }
  return scene;
}

const std::vector<std::string>& moving_caption_words() {
  static const std::vector<std::string> words = [] {
    std::vector<std::string> w = {"a",  "and", "there",  "is",    "while", "the",    "to",     "towards",
                                  "in", "top", "bottom", "upper", "lower", "center", "centre", "middle"};
    for (const std::vector<std::string>* verbs : {&kParticiples, &kFiniteVerbs})
      w.insert(w.end(), verbs->begin(), verbs->end());
    for (int d = 0; d < kDirections; ++d) {
      w.push_back(direction_name(static_cast<Direction>(d)));
      w.push_back(std::string(direction_name(static_cast<Direction>(d))) + "wards");
    }
    for (int c = 0; c < kSceneColours; ++c) w.push_back(colour_name(c));
    for (int c = 0; c < kSceneClasses; ++c) {  // "ankle boot" is two words
      std::istringstream parts(class_word(c));
      for (std::string part; parts >> part;) w.push_back(part);
    }
    std::sort(w.begin(), w.end());
    w.erase(std::unique(w.begin(), w.end()), w.end());
    return w;
  }();
  return words;
}

const std::vector<std::pair<std::string, std::string>>& moving_word_starts() {
  static const std::vector<std::pair<std::string, std::string>> starts = [] {
    std::vector<std::pair<std::string, std::string>> s;
    for (const std::vector<std::string>* verbs : {&kParticiples, &kFiniteVerbs})
      for (const std::string& verb : *verbs) s.emplace_back(verb, "in");
    for (const auto& [direction, place] : {std::pair{Direction::Left, "left"}, std::pair{Direction::Right, "right"},
                                          std::pair{Direction::Up, "top"}, std::pair{Direction::Down, "bottom"}}) {
      const std::string name = direction_name(direction);
      if (name != place) s.emplace_back(name, place);
      s.emplace_back(name + "wards", place);
    }
    s.insert(s.end(), {{"to", "the"}, {"towards", "the"}, {"while", "and"}});
    return s;
  }();
  return starts;
}

std::vector<std::string> moving_benchmark_prompts() {
  std::vector<std::string> prompts;
  for (const MovingScene& scene : moving_benchmark_layouts()) prompts.push_back(canonical_moving_caption(scene));
  return prompts;
}

}  // namespace ditgen::data
