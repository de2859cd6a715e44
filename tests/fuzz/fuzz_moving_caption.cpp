// Moving-scene captions (the prompts clips are scored against): any text parses into a clip layout that
// follows the grammar, whose canonical caption and paraphrases parse back to it, or is refused with
// ditgen::Error; never a crash or another exception.
#include <string>

#include "ditgen/core/error.h"
#include "ditgen/data/moving_captions.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ditgen;
  const std::string text(reinterpret_cast<const char*>(data), size);
  data::MovingScene clip;
  try {
    clip = data::parse_moving_caption(text);
  } catch (const Error&) {
    return 0;
  }
  data::check_moving_layout(clip);  // throws (and so fails) on a layout outside the grammar
  if (!data::same_moving_layout(data::parse_moving_caption(data::canonical_moving_caption(clip)), clip))
    __builtin_trap();
  if (!data::same_moving_layout(data::parse_moving_caption(data::moving_paraphrase(clip, size)), clip))
    __builtin_trap();
  return 0;
}
