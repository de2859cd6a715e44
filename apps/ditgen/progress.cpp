#include "progress.h"

#include <unistd.h>

#include <algorithm>

#include "ditgen/core/format.h"

namespace ditgen::cli {

ProgressMode parse_progress_mode(const std::string& text) {
  if (text == "auto") return ::isatty(STDERR_FILENO) ? ProgressMode::Bar : ProgressMode::None;
  if (text == "bar") return ProgressMode::Bar;
  if (text == "json") return ProgressMode::Json;
  if (text == "none") return ProgressMode::None;
  throw Error(ErrorKind::Usage, "invalid progress mode '" + text + "' (use auto, bar, json or none)");
}

ProgressRate estimate_rate(const Progress& p, double elapsed_s, double images_done_at_s) {
  ProgressRate rate;
  if (p.images_done > 0 && images_done_at_s > 0) {
    const double per_s = p.images_done / images_done_at_s;
    rate.images_per_s = per_s;
    // The batch in flight has been running since the last images finished.
    const double left = std::max(0, p.images_total - p.images_done) / per_s - (elapsed_s - images_done_at_s);
    rate.eta_s = p.images_done >= p.images_total ? 0 : std::max(0.0, left);
  } else if (elapsed_s > 0) {
    rate.steps_per_s = p.step / elapsed_s;
  }
  return rate;
}

std::string progress_bar_text(const Progress& p, const ProgressRate& rate, const std::string& stage) {
  constexpr int kWidth = 30;
  const double done = p.steps > 0 ? static_cast<double>(p.step) / p.steps
                      : p.images_total > 0 ? static_cast<double>(p.images_done) / p.images_total
                                           : 0;
  std::string bar(static_cast<size_t>(std::clamp(done, 0.0, 1.0) * kWidth), '=');
  bar.resize(kWidth, ' ');
  std::string text = (stage.empty() ? "" : stage + " ") + "[" + bar + "]";
  if (p.steps > 0) text += " step " + std::to_string(p.step) + "/" + std::to_string(p.steps) + " ";
  text += " images " + std::to_string(p.images_done) + "/" + std::to_string(p.images_total);
  if (rate.images_per_s) {
    const double per_s = *rate.images_per_s;
    text += "  " + (per_s >= 1 ? format_number(per_s) + " img/s" : format_number(1 / per_s) + " s/img");
  } else if (rate.steps_per_s > 0) {
    text += "  " + format_number(rate.steps_per_s) + " steps/s";
  }
  if (rate.eta_s) text += "  " + format_seconds(*rate.eta_s) + " left";
  return text;
}

nlohmann::json progress_json(const Progress& p, const ProgressRate& rate, double elapsed_s, const std::string& stage) {
  nlohmann::json line{{"event", "step"},
                      {"step", p.step},
                      {"steps", p.steps},
                      {"images_done", p.images_done},
                      {"images", p.images_total},
                      {"elapsed_s", elapsed_s},
                      {"rate", rate.images_per_s ? nlohmann::json(*rate.images_per_s) : nlohmann::json()},
                      {"eta_s", rate.eta_s ? nlohmann::json(*rate.eta_s) : nlohmann::json()}};
  if (!stage.empty()) line["stage"] = stage;
  return line;
}

ProgressDisplay::ProgressDisplay(ProgressMode mode, std::FILE* stream)
    : mode_(mode), stream_(stream), start_(std::chrono::steady_clock::now()) {}

double ProgressDisplay::seconds_since_start() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void ProgressDisplay::update(const Progress& p) {
  if (mode_ == ProgressMode::None) return;
  const double elapsed = seconds_since_start();
  if (p.images_done != images_done_) {
    images_done_ = p.images_done;
    images_done_at_s_ = elapsed;
  }
  const ProgressRate rate = estimate_rate(p, elapsed, images_done_at_s_);
  if (mode_ == ProgressMode::Json) {
    std::fprintf(stream_, "%s\n", progress_json(p, rate, elapsed, stage_).dump().c_str());
  } else {
    bar_ = progress_bar_text(p, rate, stage_);
    std::fprintf(stream_, "\r%s\033[K", bar_.c_str());  // \033[K: what a longer bar left behind goes
    drawn_ = true;
  }
  std::fflush(stream_);
}

void ProgressDisplay::start_stage(const std::string& name) {
  finish();
  stage_ = name;
  start_ = std::chrono::steady_clock::now();
  images_done_ = 0;
  images_done_at_s_ = 0;
}

void ProgressDisplay::print_line(std::FILE* to, const std::string& text) {
  if (drawn_) {
    std::fprintf(stream_, "\r\033[K");
    std::fflush(stream_);
  }
  std::fprintf(to, "%s\n", text.c_str());
  std::fflush(to);
  if (drawn_) {
    std::fprintf(stream_, "\r%s", bar_.c_str());
    std::fflush(stream_);
  }
}

void ProgressDisplay::finish() {
  if (drawn_) {
    std::fprintf(stream_, "\n");
    std::fflush(stream_);
  }
  drawn_ = false;
}

}  // namespace ditgen::cli
