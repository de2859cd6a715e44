// Scene captions (the prompts scene images are scored against): any text parses into a layout that follows
// the grammar, whose canonical caption parses back to it, or is refused with ditgen::Error; never a crash
// or another exception.
#include <string>

#include "ditgen/core/error.h"
#include "ditgen/data/scene_captions.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ditgen;
  const std::string text(reinterpret_cast<const char*>(data), size);
  data::Scene scene;
  try {
    scene = data::parse_caption(text);
  } catch (const Error&) {
    return 0;
  }
  data::check_scene(scene);  // throws (and so fails) on a layout outside the grammar
  if (!data::same_layout(data::parse_caption(data::canonical_caption(scene)), scene)) __builtin_trap();
  return 0;
}
