// Hostile input (issue 26): deeply nested JSON, text that is not UTF-8, byte-order marks and CRLF line ends,
// files that are not regular or too large to read whole, symlink loops and YAML keys that are lists. Each
// fails with ditgen::Error (or the bad prompt line alone) and its documented exit code, never a crash.
#include <sys/resource.h>
#include <sys/stat.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <streambuf>
#include <string>
#include <vector>

#include "catch.h"
#include "helpers.h"
#include "ditgen/core/error.h"
#include "ditgen/io/json_limits.h"
#include "ditgen/io/png.h"
#include "ditgen/io/prompt_file.h"
#include "ditgen/io/safetensors.h"
#include "ditgen/io/tensor_io.h"
#include "ditgen/io/untrusted_text.h"
#include "ditgen/io/yaml_json.h"

namespace fs = std::filesystem;
using ditgen::Error;
using ditgen::ErrorKind;
using namespace ditgen::io;
using ditgen::test::CliEnv;
using ditgen::test::CliResult;
using ditgen::test::contains;
using ditgen::test::error_kind;
using ditgen::test::error_message;
using ditgen::test::run_cli;
using ditgen::test::TempDir;

namespace {

constexpr int kDeep = 60000;  // the depth that overflowed the stack (a 120 KB line)

std::string nested(int depth, const std::string& inner = "1") {
  return std::string(depth, '[') + inner + std::string(depth, ']');
}

void write_file(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::vector<PromptEntry> parse(const std::string& text) {
  std::istringstream in(text);
  return parse_prompts(in, "p.txt");
}

// Caps the heap of this process and the processes it starts (restored on destruction), so a reader that
// would slurp /dev/zero fails with bad_alloc instead of taking the machine's memory. Not under
// AddressSanitizer: its shadow memory is private mappings that RLIMIT_DATA counts, so it could not start.
class DataLimit {
 public:
  explicit DataLimit(rlim_t bytes) {
    getrlimit(RLIMIT_DATA, &saved_);
    if (ditgen::test::built_with_asan()) return;
    rlimit capped = saved_;
    capped.rlim_cur = std::min(bytes, saved_.rlim_max);
    setrlimit(RLIMIT_DATA, &capped);
  }
  ~DataLimit() { setrlimit(RLIMIT_DATA, &saved_); }

 private:
  rlimit saved_{};
};
constexpr rlim_t kDataLimit = rlim_t{3} << 30;

// A stream of `size` bytes without a line break that counts how many were taken from it.
class EndlessLine : public std::streambuf {
 public:
  explicit EndlessLine(std::size_t size) : left_(size) { std::memset(chunk_, 'a', sizeof chunk_); }
  std::size_t taken = 0;

 protected:
  int_type underflow() override {
    if (left_ == 0) return traits_type::eof();
    const std::size_t n = std::min(left_, sizeof chunk_);
    left_ -= n;
    taken += n;
    setg(chunk_, chunk_, chunk_ + n);
    return traits_type::to_int_type(chunk_[0]);
  }

 private:
  char chunk_[4096];
  std::size_t left_;
};

// A PNG (text chunks only: ditgen's text reader stops at IEND) with a "ditgen" record.
std::string png_with_record(const std::string& record) {
  TempDir dir;
  write_png(dir / "r.png", Image{1, 1, 1, {0}}, {{"ditgen", record}});
  std::ifstream in(dir / "r.png", std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Runs ditgen and checks the exit code, that stderr names `message` on one line, and that stdout is empty.
void check_refusal(const std::vector<std::string>& args, const fs::path& cwd, int code, const std::string& message,
                   const CliEnv& env = {}) {
  const CliResult r = run_cli(args, cwd, env);
  INFO("ditgen " << args[0] << " ... " << args.back() << "\nstderr: " << r.err);
  CHECK(r.exit_code == code);
  CHECK(contains(r.err, message));
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  CHECK(r.out.empty());
}

}  // namespace

TEST_CASE("JSON nested deeper than 64 levels is refused before it is parsed", "[hostile][json]") {
  CHECK(error_message([] { parse_json(nested(kDeep), ErrorKind::Input, "x"); }) ==
        "x is nested deeper than 64 levels");
  CHECK(error_kind([] { parse_json("{\"a\": " + nested(65) + "}", ErrorKind::Model, "x"); }) == ErrorKind::Model);
  CHECK(parse_json(nested(kMaxJsonDepth), ErrorKind::Input, "x").is_array());
  // Brackets inside strings (escaped quotes included) are text, not nesting.
  CHECK(parse_json("{\"a\": \"\\\"" + nested(100) + "\"}", ErrorKind::Input, "x").is_object());
  // The parser's message quotes the text it stopped at: cut short.
  const std::string message = error_message([] { parse_json("\"" + std::string(100000, 'a'), ErrorKind::Input, "x"); });
  CHECK(contains(message, "x is not valid JSON: "));
  CHECK(message.size() < 300);
}

TEST_CASE("a prompt line nested 60000 deep fails alone with a short message", "[hostile][prompt]") {
  const auto entries = parse("bag\n{\"prompt\": \"coat\", \"seed\": " + nested(kDeep) + "}\ncoat\n");
  REQUIRE(entries.size() == 3);
  CHECK(entries[0].error.empty());
  CHECK(entries[1].error == "p.txt:2: the line is nested deeper than 64 levels");
  CHECK(entries[2].error.empty());
  // Values quoted in a line's error are cut short too.
  const auto big = parse("{\"prompt\": \"x\", \"n\": \"" + std::string(100000, '9') + "\"}\n");
  CHECK(contains(big[0].error, "n must be a number, got \"999"));
  CHECK(big[0].error.size() < 200);
}

TEST_CASE("a prompt line that is not UTF-8 or holds control bytes fails alone", "[hostile][prompt]") {
  const auto entries =
      parse("caf\xe9\nbag\n{\"prompt\": \"caf\xe9\"}\n{\"prompt\": \"a\\u0000b\"}\nx\x01y\n{\"prompt\": \"ok\", "
            "\"negative\": \"a\\rb\"}\n");
  REQUIRE(entries.size() == 6);
  CHECK(entries[0].error == "p.txt:1: not UTF-8 text (prompt files must be UTF-8)");
  CHECK(entries[1].error.empty());
  CHECK(entries[1].prompt == "bag");
  CHECK(contains(entries[2].error, "p.txt:3: not UTF-8"));
  CHECK(entries[3].error == "p.txt:4: the prompt contains a control character");
  CHECK(entries[4].error == "p.txt:5: the prompt contains a control character");
  CHECK(entries[5].error == "p.txt:6: the negative prompt contains a control character");
  // UTF-8 beyond ASCII is fine.
  CHECK(parse("caf\xc3\xa9\n")[0].error.empty());
}

TEST_CASE("a byte-order mark and CRLF line ends do not change the lines", "[hostile][prompt]") {
  const auto entries = parse("\xef\xbb\xbf{\"prompt\": \"bag\", \"seed\": 3}\r\n# a comment\r\n\r\ncoat\r\n");
  REQUIRE(entries.size() == 2);
  CHECK(entries[0].error.empty());
  CHECK(entries[0].prompt == "bag");
  CHECK(entries[0].seed == 3u);
  CHECK(entries[1].prompt == "coat");
  CHECK(entries[1].line == 4);
  const auto comment = parse("\xef\xbb\xbf# only a comment\r\nbag\r\n");
  REQUIRE(comment.size() == 1);
  CHECK(comment[0].prompt == "bag");
}

TEST_CASE("a prompt line is refused at 1 MiB before the rest of it is read", "[hostile][prompt]") {
  EndlessLine source(std::size_t{16} << 20);
  std::istream in(&source);
  CHECK(error_message([&] { parse_prompts(in, "stdin"); }) == "stdin:1: line longer than 1 MiB");
  CHECK(source.taken <= (std::size_t{1} << 20) + 4096);
}

TEST_CASE("readers refuse files that are not regular before reading them", "[hostile][files]") {
  DataLimit limit(kDataLimit);
  TempDir dir;
  for (const fs::path& path : {fs::path("/dev/zero"), dir.path()}) {
    INFO(path);
    CHECK(error_message([&] { read_png_text(path); }) == path.string() + " is not a regular file");
    CHECK(error_message([&] { read_png(path); }) == path.string() + " is not a regular file");
    CHECK(error_message([&] { read_yaml_file(path); }) == path.string() + " is not a regular file");
    CHECK(error_kind([&] { load_yaml_file(path); }) == ErrorKind::Input);
  }
  CHECK(contains(error_message([&] { read_prompt_file("/dev/zero"); }), "is not a regular file or a pipe"));
  // Pipes hold prompts (`-f <(command)`); a FIFO is not a PNG, and refusing it must not wait for a writer.
  const fs::path fifo = dir / "fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  CHECK(error_message([&] { read_png_text(fifo); }) == fifo.string() + " is not a regular file");
}

TEST_CASE("large files are refused from their size without being read", "[hostile][files]") {
  TempDir dir;
  const fs::path big = dir / "big.yaml";
  { std::ofstream(big) << "a: 1\n"; }
  fs::resize_file(big, kMaxYamlFileBytes + 1);  // sparse: no disk used
  CHECK(error_message([&] { read_yaml_file(big); }) ==
        big.string() + " is larger than " + std::to_string(kMaxYamlFileBytes) + " bytes");

  // A PNG's text is bounded before it is read (64 MiB in all): a chunk claiming 2^31-1 bytes is refused
  // from its header, whatever follows.
  std::string png = png_with_record("{}");
  const std::size_t text = png.find("tEXt");
  REQUIRE(text != std::string::npos);
  for (int i = 0; i < 4; ++i) png[text - 4 + i] = "\x7f\xff\xff\xff"[i];
  write_file(dir / "huge-text.png", png);
  CHECK(contains(error_message([&] { read_png_text(dir / "huge-text.png"); }), "text chunks larger than 64 MiB"));

  // Tensors copied out of a file are bounded before anything is copied.
  const std::vector<float> noise(4);
  write_safetensors(dir / "t.safetensors", {{"noise", DType::F32, {4}, std::as_bytes(std::span(noise))}});
  CHECK(load_tensors(dir / "t.safetensors", ErrorKind::Input, 16).size() == 1);
  CHECK(contains(error_message([&] { load_tensors(dir / "t.safetensors", ErrorKind::Input, 15); }),
                 "its tensors hold 16 bytes, more than the 15 expected"));
}

TEST_CASE("a YAML key that is a list is an input error", "[hostile][yaml]") {
  TempDir dir;
  write_file(dir / "list-key.yaml", "? [a, b]\n: 1\n");
  CHECK(error_message([&] { read_yaml_file(dir / "list-key.yaml"); }) ==
        (dir / "list-key.yaml").string() + ": a key must be a name, not a list or mapping (line 1)");
  CHECK(error_kind([] { parse_yaml("x:\n  {a: 1}: 2\n", "s"); }) == ErrorKind::Input);
}

TEST_CASE("safetensors headers and model descriptions nested deep are refused", "[hostile][safetensors]") {
  TempDir dir;
  auto with_header = [&](const std::string& header) {
    std::string bytes(8, '\0');
    for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(header.size() >> (8 * i));
    write_file(dir / "deep.safetensors", bytes + header);
    return dir / "deep.safetensors";
  };
  const fs::path deep =
      with_header("{\"t\": {\"dtype\": \"F32\", \"shape\": " + nested(kDeep, "") + ", \"data_offsets\": [0, 0]}}");
  CHECK(error_message([&] { SafetensorsFile::open(deep, ErrorKind::Model); }) ==
        deep.string() + ": header is nested deeper than 64 levels");
}

TEST_CASE("the CLI refuses hostile files with one line and its exit code", "[hostile][cli]") {
  DataLimit limit(kDataLimit);
  TempDir dir;
  const std::string model = ditgen::test::make_tiny_model(dir);

  // A record whose seed nests 60,000 deep: `--from` crashed quoting it, `metadata --json` ran out of memory.
  REQUIRE(run_cli({"generate", "-m", model, "bag", "-s", "5", "--steps", "1", "-o", "real.png"}, dir.path()).exit_code == 0);
  std::string record;
  for (const PngText& t : read_png_text(dir / "real.png"))
    if (t.keyword == "ditgen") record = t.text;
  const std::size_t seed = record.find("\"seed\":5");
  REQUIRE(seed != std::string::npos);
  record.replace(seed, 8, "\"seed\":" + nested(kDeep, "5"));
  write_png(dir / "deep.png", Image{1, 1, 1, {0}}, {{"ditgen", record}});
  check_refusal({"generate", "-m", model, "--from", "deep.png", "-o", "again.png"}, dir.path(), 3,
                "deep.png: its ditgen record is nested deeper than 64 levels");
  check_refusal({"metadata", "deep.png", "--json"}, dir.path(), 3, "is nested deeper than 64 levels");

  // A model whose description (metadata) nests deep: a model error (`info` crashed printing it).
  {
    const SafetensorsFile tiny = SafetensorsFile::open(model);
    std::vector<TensorData> tensors;
    for (const TensorView& v : tiny.tensors())
      tensors.push_back({v.name, v.dtype, v.shape, {v.data, v.nbytes}});
    Metadata metadata = tiny.metadata();
    metadata["ditgen.training"] = nested(kDeep);
    write_safetensors(dir / "deep-model.safetensors", tensors, metadata);
  }
  check_refusal({"info", "deep-model.safetensors"}, dir.path(), 4, "ditgen.training is nested deeper than 64 levels");

  // Not regular files, and a line without end on standard input: input errors, not memory exhaustion.
  check_refusal({"metadata", "/dev/zero"}, dir.path(), 3, "/dev/zero is not a regular file");
  check_refusal({"generate", "-m", model, "-f", "/dev/zero"}, dir.path(), 3, "is not a regular file or a pipe");
  check_refusal({"generate", "-m", model, "-f", "-"}, dir.path(), 3, "stdin:1: line longer than 1 MiB",
                CliEnv{"/dev/zero", {}, {}});
  check_refusal({"init", "/dev/zero", "-o", "z.safetensors"}, dir.path(), 3, "/dev/zero is not a regular file");

  // A model path that is a symlink loop: a model error.
  fs::create_symlink("loop.safetensors", dir / "loop.safetensors");
  check_refusal({"info", "loop.safetensors"}, dir.path(), 4, "loop.safetensors: Too many levels of symbolic links");
  check_refusal({"generate", "-m", "loop.safetensors", "bag"}, dir.path(), 4,
                "loop.safetensors: Too many levels of symbolic links");
  check_refusal({"eval", "-m", "loop.safetensors"}, dir.path(), 4, "loop.safetensors: Too many levels of symbolic links");

  // YAML keys that are lists: input errors.
  write_file(dir / "list-key.yaml", "? [a, b]\n: 1\n");
  check_refusal({"init", "list-key.yaml", "-o", "l.safetensors"}, dir.path(), 3, "a key must be a name");
  check_refusal({"generate", "-m", model, "bag", "--schedule", "list-key.yaml"}, dir.path(), 3, "a key must be a name");
  check_refusal({"train", "list-key.yaml"}, dir.path(), 3, "list-key.yaml");
}

TEST_CASE("a prompt file with a deep line and a Latin-1 line and a BOM runs its good lines", "[hostile][cli]") {
  TempDir dir;
  const std::string model = ditgen::test::make_tiny_model(dir);
  write_file(dir / "p.txt", "\xef\xbb\xbf{\"prompt\": \"bag\", \"seed\": 1}\r\ncaf\xe9\r\n{\"prompt\": \"coat\", \"seed\": " +
                                nested(kDeep) + "}\r\ncoat\r\n");
  const CliResult r = run_cli({"generate", "-m", model, "-f", "p.txt", "-o", "out/{index}.png", "--steps", "1"},
                              dir.path());
  INFO(r.err);
  CHECK(r.exit_code == 6);
  CHECK(contains(r.err, "p.txt:2: not UTF-8 text"));
  CHECK(contains(r.err, "p.txt:3: the line is nested deeper than 64 levels"));
  CHECK(fs::exists(dir / "out" / "0.png"));
  CHECK(fs::exists(dir / "out" / "3.png"));
  CHECK(fs::exists(dir / "out" / "manifest.jsonl"));
}
