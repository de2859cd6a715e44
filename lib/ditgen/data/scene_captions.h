// Captions of FashionScenes: the canonical sentence, seeded paraphrases for training, and the parser that
// turns a prompt back into the layout it asks for (what generated images are scored against).
#pragma once

#include <cstdint>
#include <string>

#include <vector>

#include "ditgen/data/scene_grammar.h"

namespace ditgen::data {

// "a red sneaker in the top left and a blue bag in the bottom right": every item in cell order, each
// "a COLOUR CLASS in the POSITION", joined by " and ".
std::string canonical_caption(const Scene& scene);

// A caption for training: the canonical one for half of the seeds, else a variant that differs from it by
// some of: items in shuffled order, "upper"/"lower" for "top"/"bottom", "middle"/"centre" for "center", the
// articles dropped, a leading "there is", commas between items. Every variant parses back to the layout.
std::string paraphrase(const Scene& scene, uint64_t seed);

// The layout a caption names (items in cell order, no jitter or sources). Accepts the canonical grammar and
// every paraphrase form, in any letter case, with an optional final full stop. Throws Error(Input) naming the
// word or rule at fault: an unknown colour or class, a missing position, two items in one cell, the centre
// beside other items, more than 4 items.
Scene parse_caption(const std::string& text);

// The canonical captions of benchmark_layouts(), in the same order: 2000 fixed prompts.
std::vector<std::string> benchmark_prompts();

}  // namespace ditgen::data
