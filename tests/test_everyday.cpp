// Everyday use: readable numbers, progress with rate and time left, Ctrl-C acknowledged, "did you mean",
// and a registry name given where a model file is needed.
#include <unistd.h>

#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include <nlohmann/json.hpp>

#include "catch.h"
#include "ditgen/core/did_you_mean.h"
#include "ditgen/core/format.h"
#include "ditgen/models/model_file.h"
#include "ditgen/pipeline/generator.h"
#include "../apps/ditgen/interrupt.h"
#include "../apps/ditgen/progress.h"
#include "helpers.h"

using namespace ditgen;
using ditgen::test::CliEnv;
using ditgen::test::CliResult;
using ditgen::test::contains;
using ditgen::test::run_cli;
using ditgen::test::TempDir;

namespace {

const std::vector<std::string> kFashionClasses{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                               "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

// An untrained pixel-space model, shared by the tests (made once).
std::string tiny_model() {
  static TempDir dir;
  static std::string path = test::make_tiny_model(dir);
  return path;
}

Progress progress(int images_done, int images_total, int step, int steps) {
  Progress p;
  p.images_done = images_done;
  p.images_total = images_total;
  p.step = step;
  p.steps = steps;
  return p;
}

// What a ProgressDisplay wrote into an in-memory stream.
struct MemoryStream {
  char* data = nullptr;
  size_t size = 0;
  std::FILE* file = open_memstream(&data, &size);
  ~MemoryStream() {
    std::fclose(file);
    std::free(data);
  }
  std::string text() {
    std::fflush(file);
    return std::string(data, size);
  }
};

// Runs `ditgen generate` on enough work to be inside it when the progress lines start, sending `signals`
// one after another, each once the acknowledgement of the one before is on stderr.
CliResult generate_interrupted(const TempDir& dir, const std::vector<int>& signals) {
  size_t sent = 0;
  CliEnv env;
  env.while_running = [&](int pid, const std::string& err) {
    if (sent < signals.size() && contains(err, "\"event\":\"step\"") &&
        (sent == 0 || contains(err, sent == 1 ? "stopping after this batch" : "abandoning"))) {
      ::kill(pid, signals[sent]);
      ++sent;
    }
    return true;
  };
  CliResult r = run_cli({"generate", "-m", tiny_model(), "bag", "-n", "3", "--batch-size", "1", "--steps", "1000",
                         "-o", "{index}.png", "--progress", "json"},
                        dir.path(), env);
  REQUIRE(sent == signals.size());
  return r;
}

}  // namespace

TEST_CASE("format_number prints a few significant digits and no exponent for ordinary sizes", "[format]") {
  CHECK(format_number(1.41234567) == "1.41");
  CHECK(format_number(0.0012345) == "0.00123");
  CHECK(format_number(12.345) == "12.3");
  CHECK(format_number(2.5) == "2.5");
  CHECK(format_number(1234.6) == "1235");
  CHECK(format_number(118.9) == "119");
  CHECK(format_number(-3.14159) == "-3.14");
  CHECK(format_number(0) == "0");
  CHECK(format_number(1.41234567, 5) == "1.4123");
  CHECK(format_number(std::nan("")) == "nan");
  CHECK(format_number(-INFINITY) == "-inf");
  CHECK(format_numbers({1.41234567, 1.41234567, 0.35212}) == "[1.41, 1.41, 0.352]");
  CHECK(format_numbers({}) == "[]");
}

TEST_CASE("format_seconds reads as seconds, minutes or hours", "[format]") {
  CHECK(format_seconds(0.52349) == "0.523 s");
  CHECK(format_seconds(12.345) == "12.3 s");
  CHECK(format_seconds(59.94) == "59.9 s");
  CHECK(format_seconds(125.4) == "2 min 05 s");
  CHECK(format_seconds(3725) == "1 h 02 min");
  CHECK(format_seconds(1e30) == "2.78e+26 h");  // a rate near zero: no overflow
}

TEST_CASE("closest_names suggests the class names nearest a mistyped one", "[did-you-mean]") {
  using Names = std::vector<std::string>;
  CHECK(closest_names("snekaer", kFashionClasses) == Names{"Sneaker"});  // a swap of neighbours is one edit
  CHECK(closest_names("SNEAKR", kFashionClasses) == Names{"Sneaker"});
  CHECK(closest_names("boot", kFashionClasses) == Names{"Ankle boot"});  // one word of the name ("Coat" is 2 away)
  CHECK(closest_names("trousers", kFashionClasses) == Names{"Trouser"});
  CHECK(closest_names("tshirt", kFashionClasses) == Names{"T-shirt/top", "Shirt"});
  CHECK(closest_names("zebra", kFashionClasses).empty());
  CHECK(closest_names("", kFashionClasses).empty());
  CHECK(closest_names(std::string(100000, 'a'), kFashionClasses).empty());
  CHECK(did_you_mean("snekaer", kFashionClasses) == " (did you mean 'Sneaker'?)");
  CHECK(did_you_mean("tshirt", kFashionClasses) == " (did you mean 'T-shirt/top' or 'Shirt'?)");
  CHECK(did_you_mean("zebra", kFashionClasses).empty());
}

TEST_CASE("an unknown class name is refused with the closest names suggested", "[did-you-mean][cli]") {
  ModelInfo info;
  info.config.num_classes = 10;
  info.class_names = kFashionClasses;
  CHECK(info.resolve_class(" sneaker ") == 7);
  CHECK(test::error_kind([&] { info.resolve_class("snekaer"); }) == ErrorKind::Usage);
  CHECK(contains(test::error_message([&] { info.resolve_class("snekaer"); }),
                 "unknown class 'snekaer' (did you mean 'Sneaker'?); valid: T-shirt/top, "));
  CHECK(contains(test::error_message([&] { info.resolve_class(" Boot"); }), "(did you mean 'Ankle boot'?)"));
  CHECK(!contains(test::error_message([&] { info.resolve_class("zebra"); }), "did you mean"));

  TempDir dir;
  CliResult r = run_cli({"generate", "-m", tiny_model(), "snekaer", "--steps", "2"}, dir.path());
  CHECK(r.exit_code == 2);
  CHECK(contains(r.err, "did you mean 'Sneaker'?"));
  CHECK(dir.listing().empty());
}

TEST_CASE("a registry name where a model file is needed says it has no weights", "[model][cli]") {
  const std::string message = test::error_message([] { check_model_path("DiT-XL/2"); });
  CHECK(contains(message, "'DiT-XL/2' is an architecture with no weights: create a model file with "
                          "`ditgen init DiT-XL/2 -o FILE`"));
  CHECK(test::error_kind([] { check_model_path("dit-s/2"); }) == ErrorKind::Model);
  CHECK(contains(test::error_message([] { check_model_path("dit-s/2"); }), "`ditgen init DiT-S/2 -o FILE`"));
  CHECK(test::error_message([] { check_model_path("no-such-model.safetensors"); }) ==
        "model file not found: no-such-model.safetensors");
  CHECK(test::error_message([] { Generator g("DiT-B/4", at::kCPU, at::kFloat); }) ==
        test::error_message([] { check_model_path("DiT-B/4"); }));
  CHECK(contains(test::error_message([] { read_model_info("DiT-B/4"); }), "no weights"));
  CHECK_NOTHROW(check_model_path(tiny_model()));

  TempDir dir;
  std::filesystem::create_symlink("loop", dir / "loop");  // a symlink to itself
  CHECK(test::error_kind([&] { check_model_path(dir / "loop"); }) == ErrorKind::Model);

  CliResult r = run_cli({"eval", "-m", "DiT-XL/2", "-n", "2"}, dir.path());
  CHECK(r.exit_code == 4);
  CHECK(contains(r.err, "is an architecture with no weights"));
}

TEST_CASE("the progress rate counts finished images and the time left counts the batch in flight", "[progress]") {
  SECTION("the first batch: steps per second, no time left yet") {
    const cli::ProgressRate rate = cli::estimate_rate(progress(0, 100, 10, 50), 4.0, 0);
    CHECK(!rate.images_per_s);
    CHECK(!rate.eta_s);
    CHECK(rate.steps_per_s == Approx(2.5));
    CHECK(cli::progress_bar_text(progress(0, 100, 10, 50), rate) ==
          "[======                        ] step 10/50  images 0/100  2.5 steps/s");
  }
  SECTION("later batches: images per second over the finished ones") {
    // 16 images finished at 8 s; 2 s into the next batch.
    const cli::ProgressRate rate = cli::estimate_rate(progress(16, 100, 25, 50), 10.0, 8.0);
    REQUIRE(rate.images_per_s);
    CHECK(*rate.images_per_s == Approx(2.0));
    REQUIRE(rate.eta_s);
    CHECK(*rate.eta_s == Approx(84 / 2.0 - 2));
    CHECK(cli::progress_bar_text(progress(16, 100, 25, 50), rate) ==
          "[===============               ] step 25/50  images 16/100  2 img/s  40 s left");
  }
  SECTION("slower than an image a second: seconds per image") {
    const cli::ProgressRate rate = cli::estimate_rate(progress(2, 10, 1, 50), 9.0, 8.0);
    CHECK(contains(cli::progress_bar_text(progress(2, 10, 1, 50), rate), "images 2/10  4 s/img  31 s left"));
  }
  SECTION("done: nothing left") {
    const cli::ProgressRate rate = cli::estimate_rate(progress(10, 10, 50, 50), 20.0, 20.0);
    CHECK(*rate.eta_s == 0);
  }
  SECTION("a stage without steps fills the bar with images") {
    const cli::ProgressRate rate = cli::estimate_rate(progress(30, 60, 0, 0), 2.0, 1.5);
    CHECK(cli::progress_bar_text(progress(30, 60, 0, 0), rate, "features") ==
          "features [===============               ] images 30/60  20 img/s  1 s left");
  }
}

TEST_CASE("JSON progress lines carry the rate and the time left", "[progress]") {
  const cli::ProgressRate first = cli::estimate_rate(progress(0, 8, 3, 10), 1.5, 0);
  nlohmann::json j = cli::progress_json(progress(0, 8, 3, 10), first, 1.5);
  CHECK(j["event"] == "step");
  CHECK(j["step"] == 3);
  CHECK(j["images"] == 8);
  CHECK(j["rate"].is_null());
  CHECK(j["eta_s"].is_null());
  CHECK(!j.contains("stage"));
  const cli::ProgressRate later = cli::estimate_rate(progress(4, 8, 2, 10), 5.0, 4.0);
  j = cli::progress_json(progress(4, 8, 2, 10), later, 5.0, "generating");
  CHECK(j["rate"].get<double>() == Approx(1.0));
  CHECK(j["eta_s"].get<double>() == Approx(3.0));
  CHECK(j["elapsed_s"].get<double>() == 5.0);
  CHECK(j["stage"] == "generating");
}

TEST_CASE("a line printed while the bar is drawn starts on a cleared line and the bar comes back", "[progress]") {
  MemoryStream terminal;  // stdout and stderr on one terminal
  {
    cli::ProgressDisplay display(cli::ProgressMode::Bar, terminal.file);
    display.update(progress(0, 2, 1, 4));
    const std::string bar = terminal.text();
    REQUIRE(bar.rfind("\r[=======", 0) == 0);
    display.print_line(terminal.file, "out/0.png");
    const std::string after = terminal.text().substr(bar.size());
    CHECK(after.rfind("\r\033[Kout/0.png\n\r[=======", 0) == 0);  // cleared, printed, drawn again
  }
  CHECK(terminal.text().back() == '\n');  // the display ends its line when it goes

  MemoryStream quiet, out;
  cli::ProgressDisplay none(cli::ProgressMode::None, quiet.file);
  none.update(progress(0, 2, 1, 4));
  none.print_line(out.file, "out/0.png");
  CHECK(quiet.text().empty());
  CHECK(out.text() == "out/0.png\n");
}

TEST_CASE("each interrupt is acknowledged in words that fit the signal and the command", "[interrupt]") {
  using cli::InterruptMode;
  const std::string first = cli::interrupt_acknowledgement(InterruptMode::Generate, SIGINT, 1);
  CHECK(first == "ditgen: stopping after this batch; press Ctrl-C again to abandon it\n");
  CHECK(contains(cli::interrupt_acknowledgement(InterruptMode::Generate, SIGTERM, 1),
                 "terminate signal: stopping after this batch; send it again (or press Ctrl-C) to abandon it"));
  CHECK(contains(cli::interrupt_acknowledgement(InterruptMode::Generate, SIGINT, 2), "abandoning the batch"));
  CHECK(contains(cli::interrupt_acknowledgement(InterruptMode::Generate, SIGTERM, 2), "abandoning the batch"));
  CHECK(contains(cli::interrupt_acknowledgement(InterruptMode::Train, SIGINT, 1),
                 "stopping after this step with a checkpoint"));
  CHECK(contains(cli::interrupt_acknowledgement(InterruptMode::Train, SIGTERM, 1),
                 "stopping after this step with a checkpoint"));
  CHECK(contains(cli::interrupt_acknowledgement(InterruptMode::Train, SIGINT, 3), "still stopping"));
}

TEST_CASE("generate acknowledges Ctrl-C at once, and a second one as abandoning", "[interrupt][cli]") {
  TempDir dir;
  const CliResult r = generate_interrupted(dir, {SIGINT, SIGINT});
  INFO(r.err);
  CHECK(r.exit_code == 130);
  const size_t stopping = r.err.find("ditgen: stopping after this batch; press Ctrl-C again to abandon it\n");
  const size_t abandoning = r.err.find("ditgen: abandoning the batch in flight");
  REQUIRE(stopping != std::string::npos);
  REQUIRE(abandoning != std::string::npos);
  CHECK(stopping < abandoning);
  CHECK(r.out.empty());  // the batch in flight was abandoned
}

TEST_CASE("SIGTERM during generate counts as the first Ctrl-C: the batch in flight finishes", "[interrupt][cli]") {
  TempDir dir;
  const CliResult r = generate_interrupted(dir, {SIGTERM});
  INFO(r.err);
  CHECK(r.exit_code == 130);
  CHECK(contains(r.err, "terminate signal: stopping after this batch"));
  CHECK(r.out == "0.png\n");  // the batch of one in flight, and no other
}

TEST_CASE("eval shows its progress: generating, then feature extraction", "[eval][progress][cli]") {
  if (test::fashion_mnist_missing("eval's progress")) return;
  TempDir dir;
  CliResult r = run_cli({"eval", "-m", tiny_model(), "-n", "4", "--steps", "2", "--batch-size", "2", "--device",
                         "cpu", "--progress", "json"},
                        dir.path());
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  std::vector<nlohmann::json> lines;
  std::istringstream err(r.err);
  for (std::string line; std::getline(err, line);)
    if (line.rfind("{", 0) == 0) lines.push_back(nlohmann::json::parse(line));
  REQUIRE(lines.size() >= 2);
  CHECK(lines.front()["stage"] == "generating");
  CHECK(lines.front()["images_done"] == 0);
  CHECK(lines.back()["stage"] == "features");
  CHECK(lines.back()["images_done"] == 12);  // the 4 generated and 4 real images of each split
  CHECK(lines.back()["images"] == 12);
  CHECK(lines.back().contains("rate"));
  CHECK(lines.back().contains("eta_s"));
  CHECK(nlohmann::json::parse(r.out).contains("fid"));  // stdout is the report alone
}
