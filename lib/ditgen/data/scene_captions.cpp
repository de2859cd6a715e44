#include "ditgen/data/scene_captions.h"

#include <tuple>
#include <vector>

#include "ditgen/core/error.h"
#include "ditgen/data/caption_words.h"
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

Cell read_position(CaptionWords& words) {
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

SceneItem read_item(CaptionWords& words) {
  SceneItem item;
  std::tie(item.colour, item.cls) = read_coloured_item(words);
  if (!words.accept("in") && !words.accept("at"))
    words.fail("expected 'in the POSITION' after '" + std::string(colour_name(item.colour)) + " " +
               class_word(item.cls) + "', found '" + words.peek() + "'");
  words.accept("the");
  item.cell = read_position(words);
  return item;
}

}  // namespace

std::string canonical_caption(const Scene& scene) {
  std::vector<std::string> phrases;
  for (const SceneItem& item : scene.items)
    phrases.push_back(coloured_item_phrase(item.colour, item.cls) + " in the " + cell_name(item.cell));
  return join_phrases(phrases, " and ", " and ");
}

std::string paraphrase(const Scene& scene, uint64_t seed) {
  const std::string canonical = canonical_caption(scene);
  SceneRandom random(seed);
  if (random.chance(1, 2)) return canonical;
  std::vector<SceneItem> items = scene.items;
  if (random.chance(1, 2)) random.shuffle(items.begin(), items.end());
  Listing listing;
  listing.articles = random.chance(2, 3);
  listing.there_is = random.chance(1, 4);
  const int joining = random.below(3);  // "and" throughout, commas then "and", commas only
  if (joining > 0) listing.between = ", ";
  if (joining == 2) listing.last = ", ";
  std::vector<std::string> phrases;
  for (const SceneItem& item : items) {
    const bool vary = random.chance(1, 2);
    phrases.push_back(coloured_item_phrase(item.colour, item.cls) + " in the " +
                      position_words(item.cell, random, vary));
  }
  // Half the captions are canonical, and only those.
  return paraphrase_of(canonical, phrases, listing);
}

std::vector<std::string> benchmark_prompts() {
  std::vector<std::string> prompts;
  for (const Scene& scene : benchmark_layouts()) prompts.push_back(canonical_caption(scene));
  return prompts;
}

Scene parse_caption(const std::string& text) {
  CaptionWords words(text);
  Scene scene;
  const ItemList list{"a red sneaker in the top left", {"and", ","}, kMaxItems,
                      "more than 4 items (a scene has four cells)"};
  read_item_list(words, list, [&] { scene.items.push_back(read_item(words)); });
  try {
    check_scene(scene);
  } catch (const Error& e) {
    words.fail(e.what());
  }
  sort_by_cell(scene);
  return scene;
}

}  // namespace ditgen::data
