// Batch generation end to end on a tiny model: prompt files, seeds and names, the manifest, --resume,
// Ctrl-C, metadata and replay, grids, --config and environment precedence.
#include <csignal>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "catch.h"
#include "ditgen/io/png.h"
#include "ditgen/io/prompt_file.h"
#include "ditgen/pipeline/outputs.h"
#include "helpers.h"

using namespace ditgen;
using ditgen::test::CliEnv;
using ditgen::test::CliResult;
using ditgen::test::contains;
using ditgen::test::run_cli;
using ditgen::test::TempDir;

namespace {

void write_file(const std::filesystem::path& p, const std::string& text) { std::ofstream(p) << text; }

std::vector<nlohmann::json> read_jsonl(const std::filesystem::path& p) {
  std::vector<nlohmann::json> rows;
  std::ifstream in(p);
  for (std::string line; std::getline(in, line);) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

int lines(const std::string& text) { return static_cast<int>(std::count(text.begin(), text.end(), '\n')); }

}  // namespace

TEST_CASE("prompt lines parse: text, JSON overrides, comments, and per-line errors", "[batch]") {
  std::istringstream in(
      "sneaker\n\n# a comment\n  bag  \n"
      "{\"prompt\": \"coat\", \"negative\": \"none\", \"seed\": 5, \"steps\": 3, \"cfg\": 1.5, \"size\": \"32x16\", "
      "\"n\": 2}\n"
      "{\"prompt\": \"dress\", \"negative\": \"bag\", \"size\": 8}\n"
      "{\"prompt\": \"x\", \"colour\": 1}\n{\"steps\": 3}\n{\"prompt\": \"x\", \"n\": 0}\n{broken\n");
  auto e = io::parse_prompts(in, "p.txt");
  REQUIRE(e.size() == 8);
  CHECK(e[0].prompt == "sneaker");
  CHECK(e[1].prompt == "bag");
  CHECK(e[1].line == 4);
  CHECK(e[2].prompt == "coat");
  CHECK_FALSE(e[2].negative);
  CHECK(*e[2].seed == 5);
  CHECK(*e[2].steps == 3);
  CHECK(*e[2].cfg == 1.5);
  CHECK((*e[2].width == 32 && *e[2].height == 16));
  CHECK(*e[2].n == 2);
  CHECK(*e[3].negative == "bag");
  CHECK((*e[3].width == 8 && *e[3].height == 8));
  CHECK(contains(e[4].error, "unknown key 'colour'"));
  CHECK(contains(e[5].error, "needs a non-empty \"prompt\""));
  CHECK(contains(e[6].error, "n is out of range"));
  CHECK(contains(e[7].error, "p.txt:10:"));
  for (int i : {0, 1, 2, 3}) CHECK(e[i].error.empty());
  std::istringstream seeds("{\"prompt\": \"x\", \"seed\": 18446744073709551615}\n{\"prompt\": \"x\", \"seed\": -1}\n");
  auto s = io::parse_prompts(seeds, "s.txt");
  CHECK(*s[0].seed == UINT64_MAX);  // the whole unsigned range
  CHECK(contains(s[1].error, "seed is out of range"));
}

TEST_CASE("a prompt file runs every good line, names and seeds follow the rule, the manifest lists each output",
          "[batch][cli]") {
  TempDir dir;
  const std::string model = test::make_tiny_model(dir);
  write_file(dir / "p.txt",
             "sneaker\n# skipped\n\nbag\n{\"prompt\": \"trouser\", \"n\": 2, \"seed\": 40, \"steps\": 3}\n"
             "{\"prompt\": \"nonsense\"}\n{\"prompt\": \"coat\", \"negative\": \"bag\"}\n");
  CliResult r = run_cli({"generate", "-m", model, "-f", "p.txt", "-o", "out/{index:02}-{prompt}-{seed}.png", "-s",
                         "100", "--steps", "2"},
                        dir.path());
  INFO(r.err);
  CHECK(r.exit_code == 6);  // one bad line: partial
  CHECK(contains(r.err, "unknown class 'nonsense'"));
  CHECK(contains(r.err, "loaded model fmnist-tiny"));
  // Image i uses seed + i; an entry's own seed s gives s + j to its image j.
  for (const char* name : {"00-sneaker-100.png", "01-bag-101.png", "02-trouser-40.png", "03-trouser-41.png",
                           "05-coat-105.png"})
    CHECK(std::filesystem::exists(dir / "out" / name));
  auto rows = read_jsonl(dir / "out" / "manifest.jsonl");
  REQUIRE(rows.size() == 6);
  CHECK(rows[2]["parameters"]["steps"] == 3);
  CHECK(rows[0]["parameters"]["steps"] == 2);
  CHECK(rows[4]["status"] == "failed");
  CHECK(rows[4]["line"] == 6);
  CHECK(rows[5]["parameters"]["negative"] == "Bag");
  for (int i : {0, 1, 2, 3, 5}) CHECK(rows[i]["status"] == "ok");
  const auto texts = io::read_png_text(dir / "out" / "05-coat-105.png");
  CHECK(contains(texts.at(0).text, "Coat\nNegative prompt: Bag\nSteps: 2"));

  SECTION("stdin works as a prompt file") {
    write_file(dir / "stdin.txt", "pullover\n");
    CliResult s = run_cli({"generate", "-m", model, "-f", "-", "-o", "in/{prompt}.png", "--steps", "1"}, dir.path(),
                          CliEnv{(dir / "stdin.txt").string(), {}, {}});
    CHECK(s.exit_code == 0);
    CHECK(std::filesystem::exists(dir / "in" / "pullover.png"));
  }
}

TEST_CASE("resuming skips complete outputs and remakes ones whose record does not match", "[batch][cli]") {
  TempDir dir;
  const std::string model = test::make_tiny_model(dir);
  write_file(dir / "p.txt", "sneaker\nbag\ncoat\n");
  const std::vector<std::string> args{"generate", "-m",      model,          "-f", "p.txt", "-o",
                                      "o/{index}.png", "-s", "7", "--steps", "2"};
  REQUIRE(run_cli(args, dir.path()).exit_code == 0);
  const auto before = std::filesystem::last_write_time(dir / "o" / "0.png");
  // Image 2 replaced by another run's image: its record no longer matches.
  std::filesystem::copy_file(dir / "o" / "0.png", dir / "o" / "2.png", std::filesystem::copy_options::overwrite_existing);
  auto resumed = args;
  resumed.push_back("--resume");
  CliResult r = run_cli(resumed, dir.path());
  CHECK(r.exit_code == 0);
  CHECK(r.out == (dir / "o").lexically_relative(dir.path()).string() + "/2.png\n");
  CHECK(contains(r.err, "1 generated, 2 already complete"));
  CHECK(std::filesystem::last_write_time(dir / "o" / "0.png") == before);
  CHECK(read_generation_record(dir / "o" / "2.png")["prompt"] == "Coat");
  auto rows = read_jsonl(dir / "o" / "manifest.jsonl");
  REQUIRE(rows.size() == 3);
  CHECK(rows[0]["status"] == "skipped");
  CHECK(rows[2]["status"] == "ok");
}

TEST_CASE("Ctrl-C stops after the batch in flight, keeps the manifest, and --resume finishes", "[batch][cli]") {
  TempDir dir;
  const std::string model = test::make_tiny_model(dir);
  std::string prompts;
  for (int i = 0; i < 40; ++i) prompts += std::to_string(i % 10) + "\n";
  write_file(dir / "p.txt", prompts);
  const std::vector<std::string> args{"generate", "-m", model, "-f", "p.txt", "-o", "o/{index:02}.png",
                                      "-s", "1", "--steps", "3", "--batch-size", "4", "--progress", "none"};
  bool sent = false;
  CliEnv interrupt;
  interrupt.while_running = [&](int pid, const std::string&) {
    if (!sent && std::filesystem::exists(dir / "o" / "03.png")) {  // the first batch is written
      ::kill(pid, SIGINT);
      sent = true;
    }
    return true;
  };
  CliResult r = run_cli(args, dir.path(), interrupt);
  INFO(r.err);
  REQUIRE(sent);
  CHECK(r.exit_code == 130);
  CHECK(contains(r.err, "interrupted"));
  auto rows = read_jsonl(dir / "o" / "manifest.jsonl");
  REQUIRE(rows.size() == 40);
  int ok = 0;
  for (const auto& row : rows) ok += row["status"] == "ok";
  CHECK(ok >= 4);
  CHECK(ok < 40);
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir / "o")) files += e.path().extension() == ".png";
  CHECK(files == ok);  // every listed image exists whole, nothing half-written
  auto resumed = args;
  resumed.push_back("--resume");
  CliResult again = run_cli(resumed, dir.path());
  CHECK(again.exit_code == 0);
  CHECK(lines(again.out) == 40 - ok);
  CHECK(contains(again.err, std::to_string(ok) + " already complete"));
  rows = read_jsonl(dir / "o" / "manifest.jsonl");
  REQUIRE(rows.size() == 40);
  for (size_t i = 0; i < rows.size(); ++i) CHECK(rows[i]["index"] == static_cast<int>(i));
}

TEST_CASE("a second Ctrl-C abandons the batch in flight: nothing of it is written", "[batch][cli]") {
  TempDir dir;
  const std::string model = test::make_tiny_model(dir);
  write_file(dir / "p.txt", "bag\ncoat\nsneaker\n");
  int sent = 0;
  size_t steps_seen_at_first = 0;
  CliEnv interrupt;
  interrupt.while_running = [&](int pid, const std::string& err) {
    size_t steps = 0;  // progress lines: one JSON object per denoising step
    for (size_t at = err.find("\"event\":\"step\""); at != std::string::npos; at = err.find("\"event\":\"step\"", at + 1))
      ++steps;
    if ((sent == 0 && steps >= 3) || (sent == 1 && steps > steps_seen_at_first + 2)) {  // inside the batch
      ::kill(pid, SIGINT);
      steps_seen_at_first = steps;
      ++sent;
    }
    return true;
  };
  CliResult r = run_cli({"generate", "-m", model, "-f", "p.txt", "-o", "o/{index}.png", "--steps", "1000",
                         "--progress", "json"},
                        dir.path(), interrupt);
  INFO(r.err);
  REQUIRE(sent == 2);
  CHECK(r.exit_code == 130);
  CHECK(r.out.empty());
  auto rows = read_jsonl(dir / "o" / "manifest.jsonl");
  REQUIRE(rows.size() == 3);
  for (const auto& row : rows) CHECK(row["status"] == "cancelled");
  CHECK(dir.listing() == std::vector<std::string>{"o", "o/manifest.jsonl", "p.txt", "tiny.safetensors"});
}

TEST_CASE("metadata prints the record and generate --from replays an image bit for bit, flags beside it win", "[batch][cli]") {
  TempDir dir;
  const std::string model = test::make_tiny_model(dir);
  REQUIRE(run_cli({"generate", "-m", model, "bag", "coat", "sneaker", "-s", "9", "--steps", "3", "--cfg-scale", "2.5",
                   "-o", "{index}.png"},
                  dir.path())
              .exit_code == 0);
  CliResult text = run_cli({"metadata", "1.png"}, dir.path());
  CHECK(text.exit_code == 0);
  CHECK(contains(text.out, "Coat\nSteps: 3, Sampler: ddim, CFG scale: 2.5, Seed: 10"));
  CliResult json = run_cli({"metadata", "1.png", "--json"}, dir.path());
  CHECK(nlohmann::json::parse(json.out)["seed"] == 10);
  CliResult replay = run_cli({"generate", "--from", "1.png", "-m", model}, dir.path());
  INFO(replay.err);
  REQUIRE(replay.exit_code == 0);
  CHECK(replay.out == "1-replay.png\n");
  CHECK(io::read_png(dir / "1-replay.png").pixels == io::read_png(dir / "1.png").pixels);  // batch of 3 vs alone
  CliResult changed = run_cli({"generate", "--from", "1.png", "-m", model, "--steps", "2", "-o", "c.png"}, dir.path());
  REQUIRE(changed.exit_code == 0);
  CHECK(read_generation_record(dir / "c.png")["steps"] == 2);
  CHECK(read_generation_record(dir / "c.png")["seed"] == 10);
  write_file(dir / "not.png", "hello");
  CHECK(run_cli({"metadata", "not.png"}, dir.path()).exit_code == 3);
  CHECK(run_cli({"generate", "--from", "not.png"}, dir.path()).exit_code == 3);
}

TEST_CASE("a grid option writes a contact sheet of the run", "[batch][cli]") {
  TempDir dir;
  const std::string model = test::make_tiny_model(dir);
  REQUIRE(run_cli({"generate", "-m", model, "bag", "-n", "5", "--steps", "1", "-o", "g/{index}.png", "--grid",
                   "sheet.png"},
                  dir.path())
              .exit_code == 0);
  io::Image sheet = io::read_png(dir / "sheet.png");
  CHECK(sheet.width == 3 * 33 - 1);  // 5 images: 3 columns, 2 rows, 1-pixel gaps
  CHECK(sheet.height == 2 * 33 - 1);
}

TEST_CASE("defaults come from flags, then the environment, then --config, then built-in", "[batch][cli]") {
  TempDir dir;
  const std::string a = test::make_tiny_model(dir, "a.safetensors", 1), b = test::make_tiny_model(dir, "b.safetensors", 2),
                    c = test::make_tiny_model(dir, "c.safetensors", 3);
  write_file(dir / "cfg.yaml", "model: " + a + "\nsteps: 3\nprompt: [bag]\noutput: cfg.png\n");
  auto used = [&](const std::vector<std::string>& extra, const std::vector<std::string>& env) {
    std::vector<std::string> args{"generate", "--config", "cfg.yaml"};
    args.insert(args.end(), extra.begin(), extra.end());
    CliResult r = run_cli(args, dir.path(), CliEnv{"", env, {}});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    return read_generation_record(dir / "cfg.png");
  };
  CHECK(used({}, {"DITGEN_MODEL="})["model"]["file"] == "a.safetensors");
  CHECK(used({}, {"DITGEN_MODEL=" + b})["model"]["file"] == "b.safetensors");
  CHECK(used({"-m", c}, {"DITGEN_MODEL=" + b})["model"]["file"] == "c.safetensors");
  CHECK(used({}, {"DITGEN_MODEL="})["steps"] == 3);
  CHECK(used({"--steps", "2"}, {"DITGEN_MODEL="})["steps"] == 2);
  write_file(dir / "bad.yaml", "stepz: 3\n");
  CliResult bad = run_cli({"generate", "--config", "bad.yaml", "bag"}, dir.path());
  CHECK(bad.exit_code == 3);
  CHECK(contains(bad.err, "unknown option 'stepz'"));
  CHECK(run_cli({"generate", "--config", "missing.yaml", "bag"}, dir.path()).exit_code == 3);
}

TEST_CASE("batch runs refuse what cannot work before writing anything", "[batch][cli][errors]") {
  TempDir dir;
  const std::string model = test::make_tiny_model(dir);
  write_file(dir / "p.txt", "bag\n{\"prompt\": \"bag\", \"seed\": 0}\n");
  write_file(dir / "empty.txt", "# nothing\n\n");
  struct Case {
    std::vector<std::string> args;
    int code;
    std::string message;
  };
  const std::vector<Case> cases{
      {{"-f", "p.txt", "-s", "0", "-o", "{prompt}-{seed}.png"}, 2, "would both be written to bag-0.png"},
      {{"-f", "missing.txt"}, 3, "cannot open prompt file missing.txt"},
      {{"-f", "empty.txt"}, 3, "has no prompts"},
      {{"-f", "p.txt", "bag"}, 2, "either as arguments or in --prompt-file"},
      {{"bag", "--resume", "--save-latents", "l.safetensors"}, 2, "--resume cannot be combined"},
  };
  const auto before = dir.listing();
  for (const Case& c : cases) {
    std::vector<std::string> args{"generate", "-m", model, "--steps", "1"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    CliResult r = run_cli(args, dir.path());
    INFO(c.message << "\n" << r.err);
    CHECK(r.exit_code == c.code);
    CHECK(contains(r.err, c.message));
    CHECK(dir.listing() == before);
  }
}
