// Prompt files and JSON lines: any text parses into entries (a bad line carrying its error) or is refused
// with ditgen::Error as a whole; never a crash or another exception.
#include <sstream>

#include "ditgen/core/error.h"
#include "ditgen/io/prompt_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ditgen;
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  try {
    for (const io::PromptEntry& e : io::parse_prompts(in, "fuzz")) {
      if (e.error.empty() && e.prompt.empty()) __builtin_trap();  // a usable entry has a prompt
      if (e.n && (*e.n < 1 || *e.n > 10000)) __builtin_trap();
      if (e.steps && (*e.steps < 1 || *e.steps > 100000)) __builtin_trap();
    }
  } catch (const Error&) {
  }
  return 0;
}
