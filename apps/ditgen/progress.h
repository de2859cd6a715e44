// Progress on stderr: a redrawn bar on a terminal, JSON lines for machines, or nothing. Both tell the
// images (and steps) done, the rate and the time left.
#pragma once

#include <chrono>
#include <cstdio>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "ditgen/pipeline/generator.h"

namespace ditgen::cli {

enum class ProgressMode { Bar, Json, None };

// "auto" gives a bar when stderr is a terminal and nothing otherwise. Throws Error(Usage) for other words.
ProgressMode parse_progress_mode(const std::string& text);

// How fast a run goes, measured over the images finished so far, so that a batch in flight does not drag
// the rate down; until the first batch ends, only its steps per second are known.
struct ProgressRate {
  std::optional<double> images_per_s;  // once an image is done
  double steps_per_s = 0;              // steps of the batch in flight, while no image is done
  std::optional<double> eta_s;         // time left, with images_per_s
};

// The rate at `elapsed_s` into a stage whose images_done last grew at `images_done_at_s`.
ProgressRate estimate_rate(const Progress& p, double elapsed_s, double images_done_at_s);

// The bar's text, e.g. "[=====     ] step 12/50  images 16/100  2.5 img/s  1 min 05 s left"; "s/img"
// below one image a second, "steps/s" while no image is done; a `stage` name leads ("features [...").
// Without steps (p.steps == 0) the bar fills with the images done.
std::string progress_bar_text(const Progress& p, const ProgressRate& rate, const std::string& stage = "");

// One JSON progress line: event "step", step, steps, images_done, images, elapsed_s, rate (images per
// second, null until an image is done), eta_s (null then too), and `stage` when given.
nlohmann::json progress_json(const Progress& p, const ProgressRate& rate, double elapsed_s,
                             const std::string& stage = "");

class ProgressDisplay {
 public:
  // Draws on `stream` (stderr; another stream in tests); times from construction.
  explicit ProgressDisplay(ProgressMode mode, std::FILE* stream = stderr);
  ~ProgressDisplay() { finish(); }
  ProgressDisplay(const ProgressDisplay&) = delete;
  ProgressDisplay& operator=(const ProgressDisplay&) = delete;

  void update(const Progress& p);
  // Begins a stage with its own counts and clock (eval: "generating", then "features"); a drawn bar keeps
  // its last state on its own line.
  void start_stage(const std::string& name);
  // Prints `text` and a newline on `to` (stdout, say) without gluing it to the bar: the bar is cleared
  // first and drawn again below. Without a bar it is a plain print.
  void print_line(std::FILE* to, const std::string& text);
  void finish();  // ends the bar's line

 private:
  double seconds_since_start() const;

  ProgressMode mode_;
  std::FILE* stream_;
  std::string stage_;
  std::chrono::steady_clock::time_point start_;
  int images_done_ = 0;            // the stage's last count ...
  double images_done_at_s_ = 0;    // ... and when it was reached
  std::string bar_;                // the bar as last drawn
  bool drawn_ = false;
};

}  // namespace ditgen::cli
