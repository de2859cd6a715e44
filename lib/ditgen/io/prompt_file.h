// Prompt files: one prompt per line, or JSON lines with per-line overrides. Blank lines and lines
// starting with '#' are skipped. A bad line becomes an entry with an error (the others still run);
// only an unreadable source fails as a whole.
#pragma once

#include <cstdint>
#include <filesystem>
#include <istream>
#include <optional>
#include <string>
#include <vector>

namespace ditgen::io {

// One prompt line. JSON keys: prompt (required), negative (a prompt, or "none"/null for the model's null
// condition), seed, steps, cfg, size ("WxH" or one number), n (images, 1..10000), schedule (a compute
// schedule: preset name or shorthand, checked when the run resolves it). Unknown keys are errors.
struct PromptEntry {
  int line = 0;                         // 1-based line in the source
  std::string prompt;
  std::optional<std::string> negative;  // "none" is stored as nullopt after parsing
  std::optional<uint64_t> seed;
  std::optional<int> steps;
  std::optional<double> cfg;
  std::optional<int> width, height;
  std::optional<int> n;                 // images of this line; unset: the run's default
  std::optional<std::string> schedule;  // compute schedule of this line; unset: the run's
  std::string error;                    // non-empty: the line could not be used, and why
};

// Parses a whole source; `name` is used in messages. At most 1,000,000 entries and 1 MiB per line
// (Error(Input) beyond).
std::vector<PromptEntry> parse_prompts(std::istream& in, const std::string& name);
// Reads a prompt file, or standard input for "-". Error(Input) when it cannot be read.
std::vector<PromptEntry> read_prompt_file(const std::string& path);

}  // namespace ditgen::io
