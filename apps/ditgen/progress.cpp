#include "progress.h"

#include <unistd.h>

#include <cstdio>

#include <nlohmann/json.hpp>

namespace ditgen::cli {

ProgressMode parse_progress_mode(const std::string& text) {
  if (text == "auto") return ::isatty(STDERR_FILENO) ? ProgressMode::Bar : ProgressMode::None;
  if (text == "bar") return ProgressMode::Bar;
  if (text == "json") return ProgressMode::Json;
  if (text == "none") return ProgressMode::None;
  throw Error(ErrorKind::Usage, "invalid progress mode '" + text + "' (use auto, bar, json or none)");
}

void ProgressDisplay::update(const Progress& p) {
  if (mode_ == ProgressMode::Json) {
    nlohmann::json line{{"event", "step"},       {"step", p.step},
                        {"steps", p.steps},      {"images_done", p.images_done},
                        {"images", p.images_total}, {"elapsed_s", p.elapsed_s}};
    std::fprintf(stderr, "%s\n", line.dump().c_str());
  } else if (mode_ == ProgressMode::Bar) {
    constexpr int kWidth = 30;
    const int filled = p.steps ? kWidth * p.step / p.steps : 0;
    std::string bar(filled, '=');
    bar.resize(kWidth, ' ');
    std::fprintf(stderr, "\r[%s] step %d/%d  images %d/%d  %.1fs", bar.c_str(), p.step, p.steps, p.images_done,
                 p.images_total, p.elapsed_s);
    drawn_ = true;
  }
  std::fflush(stderr);
}

void ProgressDisplay::finish() {
  if (drawn_) std::fprintf(stderr, "\n");
  drawn_ = false;
}

}  // namespace ditgen::cli
