// Captions of Moving FashionScenes: the canonical sentence, seeded paraphrases for training, the parser that
// turns a prompt back into the clip's layout (what generated clips are scored against), and the benchmark's
// prompts. No LibTorch (fuzzed).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "ditgen/data/moving_grammar.h"

namespace ditgen::data {

// "a red sneaker moving left and a blue bag moving up": the items in drawing order, each
// "a COLOUR CLASS moving DIRECTION", joined by " and ".
std::string canonical_moving_caption(const MovingScene& scene);

// A caption for training: the canonical one for half of the seeds, else a variant that differs from it by some
// of: the items in the other order; "moves", "going", "goes", "heading" or "heads" for "moving"; "to the
// left", "towards the right", "leftwards", "upwards" and the like for the direction; the articles dropped; a
// leading "there is" (with "moving", "going", "heading"); "while" or a comma between the items (with "while"
// only a verb: "moves", "goes", "heads"). Every variant parses back to the layout.
std::string moving_paraphrase(const MovingScene& scene, uint64_t seed);

// The layout a caption names (items in caption order, no starts or sources): the canonical grammar and every
// paraphrase form ("toward", "upward" and "leftward" too, "move" and "head"), in any letter case, with an
// optional final full stop. Throws Error(Input) naming the word or rule at fault: an unknown colour, item or
// direction, a missing "moving DIRECTION", a missing "and", "," or "while" between items, two items of one
// colour, more than 2 items.
MovingScene parse_moving_caption(const std::string& text);

// Every word a training caption of Moving FashionScenes may use (moving_paraphrase's and the still scenes'
// paraphrase's, for joint training), sorted: what a video text model's vocabulary must hold.
const std::vector<std::string>& moving_caption_words();

// For each word of moving_caption_words() that still captions never use, the still-caption word whose meaning
// is nearest: verbs start as "in", "up" as "top", "down" as "bottom", "leftwards" as "left", "to" and "towards"
// as "the", "while" as "and". A video model made from an image model starts its new words so: the image model
// then reads "a red sneaker moving left" as "a red sneaker in left" and draws the item somewhere on the left,
// instead of reading words it never saw (which leaves its clips nearly black).
const std::vector<std::pair<std::string, std::string>>& moving_word_starts();

// The canonical captions of moving_benchmark_layouts(), in the same order: 512 fixed prompts.
std::vector<std::string> moving_benchmark_prompts();

}  // namespace ditgen::data
