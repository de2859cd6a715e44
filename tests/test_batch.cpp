// Batch generation end to end on a tiny model: prompt files, seeds and names, the manifest, --resume,
// Ctrl-C, metadata and replay, grids, --config and environment precedence.
#include <csignal>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "catch.h"
#include "ditgen/io/png.h"
#include "ditgen/io/prompt_file.h"
#include "ditgen/io/tensor_io.h"
#include "ditgen/pipeline/outputs.h"
#include "helpers.h"

using namespace ditgen;
using ditgen::test::CliEnv;
using ditgen::test::CliResult;
using ditgen::test::contains;
using ditgen::test::read_jsonl;
using ditgen::test::run_cli;
using ditgen::test::TempDir;

namespace {

void write_file(const std::filesystem::path& p, const std::string& text) { std::ofstream(p) << text; }

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
  // An image made at an untrained size with --any-size replays at that size without the flag again.
  REQUIRE(run_cli({"generate", "-m", model, "bag", "-s", "2", "--steps", "1", "--height", "16", "--any-size", "-o",
                   "sub/small.png"},
                  dir.path())
              .exit_code == 0);
  CliResult small = run_cli({"generate", "--from", "sub/small.png", "-m", model}, dir.path());
  INFO(small.err);
  REQUIRE(small.exit_code == 0);
  CHECK(small.out == "sub/small-replay.png\n");  // beside the original
  CHECK(io::read_png(dir / "sub" / "small-replay.png").pixels == io::read_png(dir / "sub" / "small.png").pixels);
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
    INFO(c.message << "\nexit " << r.exit_code << "\nstderr: " << r.err << "\nstdout: " << r.out);
    CHECK(r.exit_code == c.code);
    CHECK(contains(r.err, c.message));
    CHECK(dir.listing() == before);
  }
}

TEST_CASE("outputs never replace inputs or each other or non-regular files and nonsense values are refused first",
          "[batch][cli][errors]") {
  TempDir dir;
  const std::string model = test::make_tiny_model(dir);
  std::filesystem::copy_file(model, dir / "model.png");  // a model file whose name an output could take
  REQUIRE(run_cli({"generate", "-m", model, "bag", "-s", "1", "--steps", "1", "-o", "a.png"}, dir.path()).exit_code == 0);
  write_file(dir / "p.txt", "bag\n");
  std::filesystem::create_directory(dir / "folder.png");
  std::filesystem::create_symlink("/dev/null", dir / "null.png");
  write_file(dir / "list-key.yaml", "? [steps, eta]\n: 1\n");
  write_file(dir / "list-value.yaml", "steps: [[1]]\n");
  io::save_tensors((dir / "scalar-noise.safetensors").string(), {{"noise", at::scalar_tensor(1.0f)}});
  const nlohmann::json forged{{"schema", 1}, {"prompt", "Bag"}, {"seed", 1}, {"model", "tiny.safetensors"}};
  io::Image pixel{1, 1, 1, {0}};
  io::write_png(dir / "forged.png", pixel, {{"ditgen", forged.dump()}});
  const nlohmann::json typed{{"schema", 1}, {"prompt", "Bag"}, {"seed", "one"}};
  io::write_png(dir / "typed.png", pixel, {{"ditgen", typed.dump()}});
  struct Case {
    std::vector<std::string> args;
    int code;
    std::string message;
    std::string model_file = "";  // "": the tiny model
  };
  const std::vector<Case> cases{
      {{"bag", "-o", "null.png"}, 2, "image 0 null.png exists and is not a regular file"},  // -> /dev/null
      {{"bag", "-o", "folder.png"}, 2, "folder.png exists and is not a regular file (it is a folder)"},
      {{"bag", "--grid", "folder.png"}, 2, "--grid folder.png exists and is not a regular file"},
      {{"bag", "-o", "a.png", "--grid", "a.png"}, 2, "--grid a.png is also image 0"},
      {{"bag", "-o", "a.png", "--manifest", "a.png"}, 2, "the manifest a.png is also image 0"},
      {{"bag", "-o", "a.png", "--save-latents", "./a.png"}, 2, "must end in .safetensors"},
      {{"-f", "p.txt", "-o", "o/{index}.png", "--manifest", "p.txt"}, 2, "the manifest p.txt is also the prompt file"},
      {{"bag", "-o", "model.png"}, 2, "image 0 model.png is also the model", "model.png"},
      {{"--from", "a.png", "-o", "a.png"}, 2, "image 0 a.png is also the --from image"},
      {{"bag", "-o", ""}, 2, "the output name is empty"},
      {{"bag", "-o", "x.jpg"}, 2, "the name must end in .png"},
      {{"bag", "--save-trajectory", "t.gif"}, 2, "must end in .mp4"},
      {{"bag", "--save-trajectory", "out/"}, 2, "must end in .mp4"},
      {{"bag", "--save-latents", "l.png"}, 2, "must end in .safetensors"},
      {{"bag", "-s", "-2"}, 2, "--seed must be a whole number"},
      {{"bag", "-s", "18446744073709551616"}, 2, "--seed must be a whole number"},
      {{"bag", "--width", "0"}, 2, "--width must be >= 1"},
      {{"bag", "-n", "10001"}, 2, "--num-images must be 1..10000"},
      {{"bag", "--config", "list-key.yaml"}, 3, "option names must be plain words"},
      {{"bag", "--config", "list-value.yaml"}, 3, "'steps' must be a value or a list of values"},
      {{"bag", "--init-noise", "scalar-noise.safetensors"}, 3, "got 0 dimensions"},
      {{"--from", "forged.png"}, 3, "'model' is not an object"},
      {{"--from", "typed.png"}, 3, "'seed' has the wrong type"},
      {{"bag", "--resume"}, 2, "--resume without --seed needs the seed"},
  };
  const auto before = dir.listing();
  for (const Case& c : cases) {
    std::vector<std::string> args{"generate", "-m", c.model_file.empty() ? model : c.model_file, "--steps", "1"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    CliResult r = run_cli(args, dir.path());
    INFO(c.message << "\nexit " << r.exit_code << "\nstderr: " << r.err << "\nstdout: " << r.out);
    CHECK(r.exit_code == c.code);
    CHECK(contains(r.err, c.message));
    CHECK(r.out.empty());
    CHECK(dir.listing() == before);
  }
}

TEST_CASE("a prompt file's run refuses grids of mixed sizes and latents of failed lines before the compute",
          "[batch][cli][errors]") {
  TempDir dir;
  const std::string model = test::make_tiny_model(dir);
  write_file(dir / "mixed.txt", "bag\n{\"prompt\": \"coat\", \"size\": 16}\n");
  write_file(dir / "bad.txt", "bag\nnonsense\n");
  const auto before = dir.listing();
  CliResult mixed = run_cli({"generate", "-m", model, "-f", "mixed.txt", "--grid", "g.png", "--steps", "1", "--any-size"},
                            dir.path());
  CHECK(mixed.exit_code == 2);
  CHECK(contains(mixed.err, "--grid needs images of one size, and this run mixes 32x32 and 16x16"));
  write_file(dir / "same.txt", "bag\n{\"prompt\": \"coat\", \"size\": 32}\n");  // 32 is the model's own size
  CliResult same = run_cli({"generate", "-m", model, "-f", "same.txt", "-o", "s/{index}.png", "--grid", "s/g.png",
                            "--steps", "1"},
                           dir.path());
  INFO(same.err);
  CHECK(same.exit_code == 0);
  std::filesystem::remove_all(dir / "s");
  std::filesystem::remove(dir / "same.txt");
  CliResult latents = run_cli({"generate", "-m", model, "-f", "bad.txt", "--save-latents", "l.safetensors", "--steps", "1"},
                              dir.path());
  CHECK(latents.exit_code == 2);
  CHECK(contains(latents.err, "unknown class 'nonsense'"));
  CHECK(dir.listing() == before);
}

TEST_CASE("the manifest goes beside the images when line 1 fails and BOM and CRLF lines work", "[batch][cli]") {
  TempDir dir;
  const std::string model = test::make_tiny_model(dir);
  write_file(dir / "p.txt", "nonsense\nbag\n");
  CliResult r = run_cli({"generate", "-m", model, "-f", "p.txt", "-o", "out/{index}.png", "--steps", "1"}, dir.path());
  CHECK(r.exit_code == 6);
  CHECK(std::filesystem::exists(dir / "out" / "manifest.jsonl"));
  CHECK_FALSE(std::filesystem::exists(dir / "manifest.jsonl"));
  write_file(dir / "crlf.txt", "\xEF\xBB\xBF" "bag\r\n{\"prompt\": \"coat\"}\r\n");
  CliResult crlf = run_cli({"generate", "-m", model, "-f", "crlf.txt", "-o", "c/{index}-{prompt}.png", "--steps", "1"},
                           dir.path());
  INFO(crlf.err);
  CHECK(crlf.exit_code == 0);
  CHECK(std::filesystem::exists(dir / "c" / "0-bag.png"));
  CHECK(std::filesystem::exists(dir / "c" / "1-coat.png"));
}

TEST_CASE("a non-UTF-8 prompt line fails alone and the manifest still lists it", "[batch][cli]") {
  TempDir dir;
  const std::string model = test::make_tiny_model(dir);
  write_file(dir / "p.txt", "caf\xe9\nbag\n");
  CliResult r = run_cli({"generate", "-m", model, "-f", "p.txt", "-o", "o/{index}.png", "--steps", "1"}, dir.path());
  INFO(r.err);
  CHECK(r.exit_code == 6);
  CHECK(std::filesystem::exists(dir / "o" / "1.png"));
  auto rows = read_jsonl(dir / "o" / "manifest.jsonl");
  REQUIRE(rows.size() == 2);
  CHECK(rows[0]["status"] == "failed");
  CHECK(rows[1]["status"] == "ok");
}

TEST_CASE("resuming a run started without a seed reuses the run's seed from its manifest", "[batch][cli]") {
  TempDir dir;
  const std::string model = test::make_tiny_model(dir);
  write_file(dir / "p.txt", "bag\ncoat\nsneaker\n");
  std::vector<std::string> args{"generate", "-m", model, "-f", "p.txt", "-o", "o/{prompt}-{seed}.png", "--steps", "1"};
  REQUIRE(run_cli(args, dir.path()).exit_code == 0);
  auto rows = read_jsonl(dir / "o" / "manifest.jsonl");
  REQUIRE(rows.size() == 3);
  const std::filesystem::path removed = dir.path() / rows[1]["path"].get<std::string>();
  const auto kept = std::filesystem::last_write_time(dir.path() / rows[0]["path"].get<std::string>());
  std::filesystem::remove(removed);
  write_file(removed.parent_path() / ("." + removed.filename().string() + ".tmp-AbC123"), "half");  // a killed writer's
  args.push_back("--resume");
  CliResult r = run_cli(args, dir.path());
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(contains(r.err, "1 generated, 2 already complete"));
  CHECK(contains(r.err, "removed 1 temporary file"));
  CHECK(std::filesystem::exists(removed));
  CHECK(std::filesystem::last_write_time(dir.path() / rows[0]["path"].get<std::string>()) == kept);
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir / "o")) files += 1;
  CHECK(files == 4);  // three images and the manifest: no orphans, no temporary left
}

TEST_CASE("SIGTERM during generate stops like the first Ctrl-C: finished images and a final manifest",
          "[batch][cli]") {
  TempDir dir;
  const std::string model = test::make_tiny_model(dir);
  std::string prompts;
  for (int i = 0; i < 40; ++i) prompts += std::to_string(i % 10) + "\n";
  write_file(dir / "p.txt", prompts);
  bool sent = false;
  CliEnv terminate;
  terminate.while_running = [&](int pid, const std::string&) {
    if (!sent && std::filesystem::exists(dir / "o" / "03.png")) {
      ::kill(pid, SIGTERM);
      sent = true;
    }
    return true;
  };
  CliResult r = run_cli({"generate", "-m", model, "-f", "p.txt", "-o", "o/{index:02}.png", "--steps", "3",
                         "--batch-size", "4", "--progress", "none"},
                        dir.path(), terminate);
  INFO(r.err);
  REQUIRE(sent);
  CHECK(r.exit_code == 130);
  CHECK(contains(r.err, "run again with --resume -s "));
  auto rows = read_jsonl(dir / "o" / "manifest.jsonl");
  REQUIRE(rows.size() == 40);
  for (const auto& row : rows) CHECK(row["status"] != "pending");
}

TEST_CASE("an image whose record --from could not replay is not written", "[batch][cli][errors]") {
  TempDir dir;
  std::ifstream spec_in(std::string(DITGEN_TEST_DATA) + "/../../configs/models/fmnist-tiny.yaml");
  std::string spec((std::istreambuf_iterator<char>(spec_in)), std::istreambuf_iterator<char>());
  const std::string names = "class_names: [T-shirt/top, Trouser";
  REQUIRE(spec.find(names) != std::string::npos);
  spec.replace(spec.find(names), names.size(), "class_names: [Bag, bag");  // classes 0 and 1 read alike
  write_file(dir / "spec.yaml", spec);
  REQUIRE(run_cli({"init", "spec.yaml", "-o", "dup.safetensors"}, dir.path()).exit_code == 0);
  write_file(dir / "p.txt", "1\n2\n");
  CliResult r = run_cli({"generate", "-m", "dup.safetensors", "-f", "p.txt", "-o", "o/{index}.png", "--steps", "1"},
                        dir.path());
  INFO(r.err);
  CHECK(r.exit_code == 6);
  CHECK(contains(r.err, "line 1: its record would replay the prompt 'bag' (class 1) as class 0"));
  CHECK_FALSE(std::filesystem::exists(dir / "o" / "0.png"));
  CHECK(std::filesystem::exists(dir / "o" / "1.png"));
}

TEST_CASE("running out of memory is a runtime failure (exit 1) that stops the run, not a bad line (6)",
          "[batch][cli][errors]") {
  if (test::built_with_asan()) return test::skip_test_case("AddressSanitizer cannot run under an address-space limit");
  TempDir dir;
  const std::string model = test::make_tiny_model(dir);
  write_file(dir / "p.txt", "bag\n{\"prompt\": \"coat\", \"size\": 8192}\n");  // 16.7 M tokens: > 8 GB a tensor
  CliEnv limited;
  limited.address_space_limit = uint64_t{6} << 30;
  CliResult r = run_cli({"generate", "-m", model, "-f", "p.txt", "-o", "o/{index}.png", "--steps", "1", "--any-size"},
                        dir.path(), limited);
  INFO(r.err);
  CHECK(r.exit_code == 1);
  CHECK((contains(r.err, "memory") || contains(r.err, "allocate")));
  auto rows = read_jsonl(dir / "o" / "manifest.jsonl");
  REQUIRE(rows.size() == 2);
  CHECK(rows[0]["status"] == "ok");
  CHECK(rows[1]["status"] == "failed");
}
