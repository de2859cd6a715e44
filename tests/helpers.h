// Shared test helpers: golden files, temporary folders, running the CLI.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>
#include <torch/nn/module.h>

#include "ditgen/core/error.h"

namespace ditgen {
class Generator;
struct GenerationRequest;
struct LoadedModel;
}  // namespace ditgen

namespace ditgen::test {

std::filesystem::path golden(const std::string& name);  // tests/data/golden/NAME

// A fresh empty folder under the system temp dir, removed with the object.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }
  std::vector<std::string> listing() const;  // file names, sorted (hidden ones too)

 private:
  std::filesystem::path path_;
};

struct CliResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Extra process settings for run_cli.
struct CliEnv {
  std::string stdin_file;            // fed to standard input (default: /dev/null)
  std::vector<std::string> env;      // "NAME=value" added to (or replacing in) the environment; "NAME=" unsets
  // Called while the process runs, with its pid and what it has written to stderr so far, until it
  // returns false (e.g. to send a signal once it reports progress).
  std::function<bool(int pid, const std::string& err)> while_running;
  // The process's address-space limit in bytes (RLIMIT_AS; 0 = unlimited): allocations past it fail, so a
  // test can make ditgen run out of memory without using it.
  uint64_t address_space_limit = 0;
};

// Whether this test binary was built with AddressSanitizer, which cannot run under an address-space limit.
bool built_with_asan();

// Runs the built ditgen binary with `args` (no shell), in `cwd`, capturing stdout and stderr.
CliResult run_cli(const std::vector<std::string>& args, const std::filesystem::path& cwd, const CliEnv& extra = {});

bool contains(const std::string& text, const std::string& part);

// An untrained tiny pixel-space model (configs/models/fmnist-tiny.yaml) written by `ditgen init` into
// `dir` as `name`; returns its path.
std::string make_tiny_model(const TempDir& dir, const std::string& name = "tiny.safetensors", int seed = 3);

// The rows of a JSON-lines file (a manifest).
std::vector<nlohmann::json> read_jsonl(const std::filesystem::path& path);

// What a missing CUDA device or data set skips: the whole test case (it must return at once, before any
// check), which CTest then reports as skipped, or the rest of one that passes on the checks it made.
enum class Skipping { TestCase, Rest };

// WARNs that the whole test case is skipped and why, with the marker (DITGEN_TEST_SKIP_MARKER) that makes
// CTest report it as skipped (tests/CMakeLists.txt). Only before the test case's first check: the marker
// wins over failures.
void skip_test_case(const std::string& why);

// True, with a WARN, where there is no CUDA device: GPU test cases (or the GPU halves of CPU ones) return
// then; they run on the GPU machine.
bool no_cuda_device(Skipping what = Skipping::TestCase);

// True, with a WARN naming what is `skipped`, where the Fashion-MNIST package (dataset-fashion-mnist) is not
// installed.
bool fashion_mnist_missing(const std::string& skipped, Skipping what = Skipping::TestCase);

// models/NAME of the source tree (the shipped models).
std::string shipped_model(const std::string& name);

// The text of the source tree's configs/train/NAME.yaml with its `../models/` model path made absolute, so the
// recipe runs from a temporary folder.
std::string train_recipe(const std::string& name);

// One image per class from a shipped Fashion-MNIST model (`ditgen eval`, DDIM 10, CFG 3, CPU): the shipped
// classifier must recognise at least 7 of the 10 (an untrained model gets about 1). WARNs and skips where the
// Fashion-MNIST package is not installed.
void check_generates_asked_classes(const std::string& model_file);

// What one model family's CLI flow (check_cli_flow) varies.
struct CliFlow {
  std::string spec;                    // the model spec YAML, written as spec.yaml
  std::vector<std::string> init_args;  // extra `ditgen init` arguments
  std::string info_line;               // text `ditgen info` must print about the model
  int refused_size = 0;                // a square size `ditgen generate` must refuse with exit code 2 ...
  std::string refusal;                 // ... saying this
};

struct CliFlowModels {
  std::string initial;  // as `ditgen init` wrote it
  std::string trained;  // after 4 training steps; "" when Fashion-MNIST is missing and training was skipped
};

// The CLI flow that every model family must pass on the CPU, run and checked in `dir`: init, generate,
// info, a refused generation that leaves no output, and a short Fashion-MNIST training run from the same
// spec (WARNs and skips it where the data set is not installed). Returns the models for family checks.
CliFlowModels check_cli_flow(const TempDir& dir, const CliFlow& flow);

// On CUDA, the model's forward on each golden key's inputs (KEY.x, KEY.t, KEY.y in `tensors`) against KEY.out,
// to 1e-4 of the output's scale. The model ends on the CPU again.
void check_cuda_forward_matches_golden(LoadedModel& model, const std::map<std::string, at::Tensor>& tensors,
                                       const std::vector<std::string>& keys);

// A short guided generation for GPU checks: three images of class 4 (seeds 1-3), DDIM 6 steps, CFG 2.
GenerationRequest short_guided_request();

// Generates `request` eagerly, then from captured CUDA graphs, and checks that both give the same frames (to
// 1e-5 of their scale): capturing must not change what a sampler step computes.
void check_captured_matches_eager(Generator& generator, const GenerationRequest& request);

// The kind of ditgen::Error that `f` throws, or nullopt when it throws none.
template <class F>
std::optional<ErrorKind> error_kind(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.kind();
  }
  return std::nullopt;
}

// The message of the ditgen::Error that `f` throws, or "" when it throws none.
template <class F>
std::string error_message(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Elements in all of a module's parameters.
int64_t parameter_count(const torch::nn::Module& module);

// max |a - b| over all elements (as double).
double max_abs_diff(const at::Tensor& a, const at::Tensor& b);

// Float32 rounding tolerance for results of scale max|expected| (random-weight samples reach ~1000):
// max |actual - expected| <= rel * max(1, max|expected|).
bool close_relative(const at::Tensor& actual, const at::Tensor& expected, double rel);

}  // namespace ditgen::test
