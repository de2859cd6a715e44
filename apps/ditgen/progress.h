// Progress on stderr: a redrawn bar on a terminal, JSON lines for machines, or nothing.
#pragma once

#include <string>

#include "ditgen/pipeline/generator.h"

namespace ditgen::cli {

enum class ProgressMode { Bar, Json, None };

// "auto" gives a bar when stderr is a terminal and nothing otherwise. Throws Error(Usage) for other words.
ProgressMode parse_progress_mode(const std::string& text);

class ProgressDisplay {
 public:
  explicit ProgressDisplay(ProgressMode mode) : mode_(mode) {}
  ~ProgressDisplay() { finish(); }
  void update(const Progress& p);
  void finish();  // ends the bar's line

 private:
  ProgressMode mode_;
  bool drawn_ = false;
};

}  // namespace ditgen::cli
