// The ditgen CLI end to end on tiny models: outputs, metadata, exit codes, nothing left behind on errors.
#include <csignal>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "catch.h"
#include "ditgen/io/png.h"
#include "ditgen/io/tensor_io.h"
#include "ditgen/io/video.h"
#include "ditgen/models/model_file.h"
#include "helpers.h"

using namespace ditgen;
using ditgen::test::CliResult;
using ditgen::test::contains;
using ditgen::test::golden;
using ditgen::test::run_cli;
using ditgen::test::TempDir;

namespace {

// An untrained pixel-space model, shared by the tests (made once).
std::string tiny_model() {
  static TempDir dir;
  static std::string path = test::make_tiny_model(dir);
  return path;
}


}  // namespace

TEST_CASE("generate writes PNGs with parameters and a replayable record", "[cli]") {
  TempDir dir;
  CliResult r = run_cli({"generate", "-m", tiny_model(), "Sneaker", "bag", "-n", "2", "-s", "40", "--steps", "4",
                         "-o", "out/{index:03}-{prompt}-{seed}.png", "--progress", "json"},
                        dir.path());
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(r.out == "out/000-sneaker-40.png\nout/001-sneaker-41.png\nout/002-bag-42.png\nout/003-bag-43.png\n");
  CHECK(contains(r.err, R"("event":"step")"));
  io::Image image = io::read_png(dir / "out/002-bag-42.png");
  CHECK(image.width == 32);
  CHECK(image.height == 32);
  CHECK(image.channels == 1);
  auto texts = io::read_png_text(dir / "out/002-bag-42.png");
  REQUIRE(texts.size() == 2);
  CHECK(texts[0].keyword == "parameters");
  CHECK(contains(texts[0].text, "Bag\nSteps: 4, Sampler: ddim, CFG scale: 4, Seed: 42, Size: 32x32"));
  CHECK(texts[1].keyword == "ditgen");
  auto record = nlohmann::json::parse(texts[1].text);
  CHECK(record["seed"] == 42);
  CHECK(record["class_id"] == 8);
  CHECK(record["steps"] == 4);
  CHECK(record["model"]["sha256"].get<std::string>().size() == 64);
}

TEST_CASE("the same seed gives the same image and another seed another", "[cli]") {
  TempDir dir;
  const std::string model = golden("tiny_p4_rect.model.safetensors").string();  // flow model, random weights
  for (std::string seed : {"5", "5", "6"})
    REQUIRE(run_cli({"generate", "-m", model, "0", "-s", seed, "--steps", "3", "-o", seed + "-{index}.png"},
                    dir.path()).exit_code == 0);
  CHECK(io::read_png(dir / "5-0.png").pixels == io::read_png(dir / "5-0.png").pixels);
  CliResult again = run_cli({"generate", "-m", model, "0", "-s", "5", "--steps", "3", "-o", "again.png"}, dir.path());
  REQUIRE(again.exit_code == 0);
  CHECK(io::read_png(dir / "again.png").pixels == io::read_png(dir / "5-0.png").pixels);
  CHECK(io::read_png(dir / "6-0.png").pixels != io::read_png(dir / "5-0.png").pixels);
}

TEST_CASE("generate --save-latents and --init-noise make runs comparable", "[cli]") {
  TempDir dir;
  const std::string model = golden("tiny_p2.model.safetensors").string();  // 4-channel latent model
  auto g = io::load_tensors(golden("diffusion.safetensors"));
  io::save_tensors(dir / "noise.safetensors", {{"noise", g.at("init_noise")}});
  CliResult r = run_cli({"generate", "-m", model, "1", "7", "--sampler", "ddim", "--steps", "10", "--cfg-scale", "4",
                         "--cfg-channels", "3", "--init-noise", "noise.safetensors", "--save-latents",
                         "latents.safetensors", "--device", "cpu", "--dtype", "fp32"},
                        dir.path());
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  auto latents = io::load_tensors(dir / "latents.safetensors").at("latents");
  CHECK(test::close_relative(latents, g.at("ddim_cfg4_ch3"), 2e-6));
}

TEST_CASE("generate --save-trajectory writes an H.264 MP4 of every step", "[cli][video]") {
  if (!io::video_supported()) return;  // built without FFmpeg: the flag is refused (next test)
  TempDir dir;
  CliResult r = run_cli({"generate", "-m", tiny_model(), "coat", "-n", "3", "-s", "1", "--steps", "5",
                         "--save-trajectory", "t.mp4"},
                        dir.path());
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  io::VideoInfo v = io::probe_video(dir / "t.mp4");
  CHECK(v.codec == "h264");
  CHECK(v.frames == 6);  // the noise and the state after each of 5 steps
}

TEST_CASE("info reports the config and GFLOPs", "[cli]") {
  TempDir dir;
  CliResult r = run_cli({"info", "DiT-XL/2"}, dir.path());
  REQUIRE(r.exit_code == 0);
  CHECK(contains(r.out, "GFLOPs:      118.6 per forward"));
  CliResult file = run_cli({"info", tiny_model(), "--json"}, dir.path());
  REQUIRE(file.exit_code == 0);
  auto j = nlohmann::json::parse(file.out);
  CHECK(j["class_names"][7] == "Sneaker");
  CHECK(j["training"]["untrained"] == true);
}

TEST_CASE("bench times forwards and whole generations and prints JSON records", "[cli][bench]") {
  TempDir dir;
  CliResult r = run_cli({"bench", "-m", tiny_model(), "--device", "cpu", "--json", "-b", "1,2", "--reps", "2",
                         "--warmup", "0", "--sample-batch", "2", "--steps", "2", "--sample-reps", "1"},
                        dir.path());
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  std::vector<nlohmann::json> records;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) records.push_back(nlohmann::json::parse(line));
  REQUIRE(records.size() == 3);  // eager forwards at batch 1 and 2, one generation; CPU skips fused/fast
  CHECK(contains(r.err, "path 'fast' needs a CUDA device"));
  auto info = nlohmann::json::parse(run_cli({"info", tiny_model(), "--json"}, dir.path()).out);
  for (const auto& j : records) {
    CHECK(j["tool"] == "ditgen");
    CHECK(j["path"] == "eager");
    CHECK(j["height"] == 32);
    CHECK(j["gflops_per_image"].get<double>() == Approx(info["gflops_per_forward"].get<double>()));
    CHECK(j["ms"].get<double>() > 0);
    CHECK(j["ms_min"].get<double>() <= j["ms"].get<double>());
    CHECK(j["mfu"].is_null());  // no MFU off CUDA
  }
  CHECK(records[0]["kind"] == "forward");
  CHECK(records[1]["batch"] == 2);
  const auto& sample = records[2];
  CHECK(sample["kind"] == "sample");
  CHECK(sample["steps"] == 2);
  // 2 images x 2 steps x 2 guidance branches forwards in the generation.
  CHECK(sample["tflops"].get<double>() == Approx(2 * sample["gflops_per_image"].get<double>() * 8 /
                                                 sample["ms"].get<double>()));
}

TEST_CASE("bad input gets one clear line, its exit code, and no output", "[cli][errors]") {
  TempDir dir;
  std::ofstream(dir / "not-a-folder") << "x";
  std::ofstream(dir / "corrupt.safetensors") << "\x10\0\0\0\0\0\0\0{\"a\":";
  io::save_tensors(dir / "badnoise.safetensors", {{"noise", at::zeros({1, 1, 8, 8})}});
  std::ofstream(dir / "huge.yaml") << "depth: 256\nhidden_size: 16384\nnum_heads: 16\npatch_size: 2\n"
                                      "input_size: [32, 32]\nin_channels: 1\nnum_classes: 10\n";
  // A safetensors header whose tensor lies past the (empty) data section.
  const std::string header = R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})";
  std::string short_file(8, '\0');
  short_file[0] = static_cast<char>(header.size());
  std::ofstream(dir / "short.safetensors", std::ios::binary) << short_file << header;
  std::ofstream(dir / "deep.yaml") << "config: " << std::string(100, '[') << std::string(100, ']') << "\n";
  std::ofstream(dir / "sparse-bad.yaml") << "config:\n  depth: 4\n  hidden_size: 32\n  num_heads: 2\n  patch_size: 2\n"
                                            "  in_channels: 1\n  input_size: [16, 16]\n  num_classes: 10\n  sparse: "
                                            "{pooling_blocks: 1, modules: 1, groups: [2, 1, 1, 0], min_grid: 2, max_grid: 5}\n";
  std::ofstream(dir / "float-width.yaml") << "config:\n  depth: 4\n  hidden_size: 6666666e128\n  num_heads: 2\n"
                                             "  patch_size: 2\n  in_channels: 1\n  input_size: [16, 16]\n  num_classes: 10\n";
  std::ofstream(dir / "bad-schedule.yaml") << "cond: 3\n";
  std::ofstream(dir / "notpng.png") << "x\n";
  const std::string model = tiny_model();
  struct Case {
    std::vector<std::string> args;
    int code;
    std::string message;
  };
  const std::vector<Case> cases{
      {{"generate", "-m", "missing.safetensors", "bag"}, 4, "model file not found: missing.safetensors"},
      {{"generate", "-m", "corrupt.safetensors", "bag"}, 4, "corrupt.safetensors"},
      {{"generate", "-m", model, "sandals"}, 2, "unknown class 'sandals' (did you mean 'Sandal'?); valid: T-shirt/top, Trouser"},
      {{"generate", "-m", model, "bag", "--steps", "0"}, 2, "--steps must be >= 1"},
      {{"generate", "-m", model, "bag", "--height", "31"}, 2, "multiples of the patch size 2"},
      {{"generate", "-m", model, "bag", "--height", "-4"}, 2, "--height must be >= 1"},
      {{"generate", "-m", model, "bag", "-o", "not-a-folder/x.png"}, 5, "not-a-folder"},
      {{"generate", "-m", model, "bag", "--init-noise", "badnoise.safetensors"}, 3, "initial noise has shape"},
      {{"generate", "-m", model, "bag", "--init-noise", "absent.safetensors"}, 3, "absent.safetensors"},
      {{"generate", "-m", model, "bag", "--sampler", "euler"}, 2, "sampler 'euler' does not fit"},
      {{"generate", "-m", model, "bag", "--device", "tpu"}, 2, "invalid device 'tpu'"},
      {{"generate", "-m", model, "bag", "--progress", "loud"}, 2, "invalid progress mode"},
      {{"generate", "-m", model, "bag", "-o", "{nope}.png"}, 2, "unknown field {nope}"},
      {{"generate", "-m", model, "bag", "-o", "../escape.png"}, 2, "must not contain '..'"},
      {{"generate", "-m", model}, 2, "no prompt given"},
      {{"generate", "--steps", "x"}, 2, "usage error"},
      {{"frobnicate"}, 2, "usage error"},
      {{"generate", "-m", golden("tiny_p2.model.safetensors").string(), "1"}, 2, "--save-latents"},
      {{"bench", "-m", model, "--path", "warp"}, 2, "unknown path 'warp'"},
      {{"init", "huge.yaml", "-o", "huge.safetensors"}, 2, "GiB are available"},
      {{"bench", "-m", model, "-b", "0"}, 2, "batch sizes must be in 1..4096"},
      {{"bench", "-m", model, "--size", "33"}, 2, "must be a multiple of the patch size 2"},
      {{"bench", "-m", model, "--device", "cpu", "--attention", "magic"}, 2, "unknown attention backend 'magic'"},
      {{"bench", "-m", "missing.safetensors"}, 4, "missing.safetensors"},
      {{"generate", "-m", "short.safetensors", "bag"}, 4, "data_offsets [0, 16] exceed the data section of 0 bytes"},
      {{"init", "deep.yaml", "-o", "d.safetensors"}, 3, "YAML nested deeper than 64"},
      {{"init", "sparse-bad.yaml", "-o", "s.safetensors"}, 3, "sparse.groups must be [1, semantic blocks, 1, dense"},
      {{"init", "float-width.yaml", "-o", "f.safetensors"}, 3, "hidden_size must be an integer"},
      {{"generate", "-m", model, "bag", "--schedule", "weak=4"}, 2, "invalid compute schedule item 'weak=4'"},
      {{"generate", "-m", model, "bag", "--schedule", "bad-schedule.yaml"}, 3, "cond must be a list of {patch, until}"},
      {{"generate", "-m", model, "bag", "--schedule", "density=4:8"}, 2, "has no sparse layout"},
      {{"generate", "-m", model, "-f", "absent.txt"}, 3, "cannot open prompt file absent.txt"},
      {{"generate", "-m", model, "--from", "notpng.png"}, 3, "notpng.png is not a PNG file"},
      {{"metadata", "notpng.png"}, 3, "notpng.png is not a PNG file"},
  };
  const auto before = dir.listing();
  for (const Case& c : cases) {
    CliResult r = run_cli(c.args, dir.path());
    INFO("ditgen " << c.args[0] << " ... " << c.args.back() << "\nstderr: " << r.err);
    CHECK(r.exit_code == c.code);
    CHECK(contains(r.err, c.message));
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') <= 2);  // one line (plus a hint for usage errors)
    CHECK(r.out.empty());
    CHECK(dir.listing() == before);
  }
}

TEST_CASE("generate --help documents the exit codes", "[cli]") {
  TempDir dir;
  CliResult r = run_cli({"generate", "--help"}, dir.path());
  CHECK(r.exit_code == 0);
  CHECK(contains(r.out, "4  model error"));
  CHECK(contains(r.out, "--cfg-channels"));
}

TEST_CASE("generate uses the shipped default model, the text model, when -m is not given", "[cli]") {
  TempDir dir;
  CliResult r = run_cli({"generate", "a red ankle boot in the center", "-s", "3", "--steps", "2", "-o", "boot.png"},
                        dir.path());
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  auto record = nlohmann::json::parse(io::read_png_text(dir / "boot.png").at(1).text);
  CHECK(record["model"]["name"] == "scenes-dit");
  CHECK(record["prompt"] == "a red ankle boot in the center");
  CHECK(io::read_png(dir / "boot.png").channels == 3);
}

TEST_CASE("train and eval run from the command line", "[cli][train]") {
  if (test::fashion_mnist_missing("train and eval")) return;
  TempDir dir;
  const std::string spec = std::string(DITGEN_TEST_DATA) + "/../../configs/models/fmnist-tiny.yaml";
  std::ofstream(dir / "train.yaml") << "model: " << spec << "\noutput: run\nsteps: 4\nbatch_size: 4\n"
                                    << "log_every: 2\ndevice: cpu\nbf16: false\n"
                                    << "sampler_defaults: {sampler: ddim, steps: 1, cfg_scale: 2.0}\n";
  CliResult train = run_cli({"train", "train.yaml"}, dir.path());
  INFO(train.err);
  REQUIRE(train.exit_code == 0);
  CHECK(train.out == "run/model.safetensors\n");
  CliResult again = run_cli({"train", "train.yaml"}, dir.path());
  CHECK(again.exit_code == 2);
  CHECK(contains(again.err, "pass --resume"));
  CliResult eval = run_cli({"eval", "-m", "run/model.safetensors", "-n", "8", "--steps", "1", "--batch-size", "4",
                            "-o", "eval.json", "--device", "cpu"},
                           dir.path());
  INFO(eval.err);
  REQUIRE(eval.exit_code == 0);
  auto j = nlohmann::json::parse(eval.out);
  for (const char* key : {"fid", "class_accuracy", "real_vs_real_fid", "gflops_per_image", "wall_seconds"})
    CHECK(j.contains(key));
  CHECK(std::filesystem::exists(dir / "eval.json"));
}

TEST_CASE("SIGTERM stops training after the step in flight with a checkpoint and --resume finishes it",
          "[cli][train]") {
  if (test::fashion_mnist_missing("interrupted training")) return;
  TempDir dir;
  const std::string spec = std::string(DITGEN_TEST_DATA) + "/../../configs/models/fmnist-tiny.yaml";
  REQUIRE(run_cli({"init", spec, "-o", "start.safetensors"}, dir.path()).exit_code == 0);
  auto write_config = [&](int64_t steps) {
    std::ofstream(dir / "train.yaml") << "model: start.safetensors\noutput: run\nsteps: " << steps
                                      << "\nbatch_size: 2\nlog_every: 1\ndevice: cpu\nbf16: false\n"
                                      << "sampler_defaults: {steps: 1}\n";  // a quick sample grid with each model
  };
  write_config(1000000);  // never finishes on its own
  bool sent = false;
  test::CliEnv stop;
  stop.while_running = [&](int pid, const std::string& err) {
    if (!sent && contains(err, "step 2/")) {
      ::kill(pid, SIGTERM);
      sent = true;
    }
    return true;
  };
  CliResult r = run_cli({"train", "train.yaml"}, dir.path(), stop);
  INFO(r.err);
  REQUIRE(sent);
  CHECK(r.exit_code == 130);
  CHECK(r.out.empty());
  CHECK(std::filesystem::exists(dir / "run" / "checkpoint.safetensors"));
  CHECK_FALSE(std::filesystem::exists(dir / "run" / "model.safetensors"));
  const size_t at = r.err.find("stopped at step ");
  REQUIRE(at != std::string::npos);
  const int64_t stopped = std::stoll(r.err.substr(at + 16));
  CHECK(stopped >= 2);
  nlohmann::json last_log;
  {
    std::ifstream log(dir / "run" / "log.jsonl");
    for (std::string line; std::getline(log, line);) last_log = nlohmann::json::parse(line);
  }
  REQUIRE(last_log.value("step", int64_t{0}) == stopped);
  // A resume needs only the run folder: the checkpoint describes the model (another machine may lack the file).
  std::filesystem::remove(dir / "start.safetensors");
  // Steps lowered to where it stopped (scripts/gpu/common.sh stop_runs): the model is written at once, and
  // its record keeps the stopped run's last loss and time, not those of a resume that trained nothing.
  write_config(stopped);
  CliResult at_once = run_cli({"train", "train.yaml", "--resume"}, dir.path());
  INFO(at_once.err);
  REQUIRE(at_once.exit_code == 0);
  {
    LoadedModel m = load_model(dir / "run" / "model.safetensors", at::kCPU, at::kFloat);
    CHECK(m.info.training["steps"] == stopped);
    CHECK(m.info.training["final_loss"].get<double>() == Approx(last_log["loss"].get<double>()));
    CHECK(m.info.training["seconds"].get<double>() >= last_log["elapsed_s"].get<double>());
  }
  // The run goes on from its checkpoint; a config that ends two steps later makes the model file again.
  write_config(stopped + 2);
  CliResult resumed = run_cli({"train", "train.yaml", "--resume"}, dir.path());
  INFO(resumed.err);
  REQUIRE(resumed.exit_code == 0);
  CHECK(resumed.out == "run/model.safetensors\n");
  LoadedModel m = load_model(dir / "run" / "model.safetensors", at::kCPU, at::kFloat);
  CHECK(m.info.training["steps"] == stopped + 2);
}
