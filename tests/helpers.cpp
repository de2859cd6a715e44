#include "helpers.h"

#include <fcntl.h>
#include <ftw.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "catch.h"
#include "ditgen/models/model_file.h"
#include "ditgen/pipeline/generator.h"

extern char** environ;

namespace ditgen::test {

std::filesystem::path golden(const std::string& name) {
  return std::filesystem::path(DITGEN_TEST_DATA) / "golden" / name;
}

TempDir::TempDir() {
  std::random_device rd;
  path_ = std::filesystem::temp_directory_path() / ("ditgen-test-" + std::to_string(rd()) + std::to_string(rd()));
  std::filesystem::create_directories(path_);
}

// nftw rather than std::filesystem::remove_all: the LibTorch wheel exports a broken copy of remove_all
// that can win symbol resolution over libstdc++'s (it jumps to a null pointer).
TempDir::~TempDir() {
  nftw(
      path_.c_str(),
      [](const char* p, const struct stat*, int, struct FTW*) { return ::remove(p); }, 16, FTW_DEPTH | FTW_PHYS);
}

std::vector<std::string> TempDir::listing() const {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::recursive_directory_iterator(path_))
    names.push_back(std::filesystem::relative(e.path(), path_).string());
  std::sort(names.begin(), names.end());
  return names;
}

namespace {
std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void report_skip(Skipping what, const std::string& why) {
  if (what == Skipping::TestCase)
    skip_test_case(why);
  else
    WARN(why);
}
}  // namespace

CliResult run_cli(const std::vector<std::string>& args, const std::filesystem::path& cwd, const CliEnv& extra) {
  TempDir io;
  const std::string out = (io / "stdout").string(), err = (io / "stderr").string();
  const std::string in = extra.stdin_file.empty() ? "/dev/null" : extra.stdin_file;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, in.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
  std::vector<std::string> argv_s{DITGEN_CLI_PATH};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s;
  for (char** e = environ; *e; ++e) {
    const std::string var(*e);
    const bool replaced = std::any_of(extra.env.begin(), extra.env.end(), [&](const std::string& x) {
      return var.compare(0, x.find('=') + 1, x, 0, x.find('=') + 1) == 0;
    });
    if (!replaced) env_s.push_back(var);
  }
  for (const auto& x : extra.env)
    if (x.back() != '=') env_s.push_back(x);
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_t pid = 0;
  // posix_spawn has no resource-limit action: the child inherits this process's limit, set for the spawn alone.
  rlimit saved{};
  getrlimit(RLIMIT_AS, &saved);
  if (extra.address_space_limit) {
    const rlimit limited{extra.address_space_limit, saved.rlim_max};
    setrlimit(RLIMIT_AS, &limited);
  }
  const int rc = posix_spawn(&pid, DITGEN_CLI_PATH, &actions, nullptr, argv.data(), envp.data());
  if (extra.address_space_limit) setrlimit(RLIMIT_AS, &saved);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error("cannot start " + std::string(DITGEN_CLI_PATH));
  int status = 0;
  bool reaped = false;
  if (extra.while_running) {
    while (!(reaped = waitpid(pid, &status, WNOHANG) == pid) && extra.while_running(pid, slurp(err))) usleep(20000);
  }
  // A wait interrupted by a signal is repeated; any other failure would leave `status` unset and the output
  // unfinished, so it throws instead of reporting exit 0.
  while (!reaped) {
    if (waitpid(pid, &status, 0) == pid) break;
    if (errno != EINTR) throw std::runtime_error("waitpid failed for the ditgen child: " + std::string(std::strerror(errno)));
  }
  CliResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.out = slurp(out);
  result.err = slurp(err);
  return result;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  if (a.sizes() != b.sizes()) throw std::runtime_error("shape mismatch " + c10::str(a.sizes(), " vs ", b.sizes()));
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

bool close_relative(const at::Tensor& actual, const at::Tensor& expected, double rel) {
  const double scale = std::max(1.0, expected.abs().max().item<double>());
  return max_abs_diff(actual, expected) <= rel * scale;
}

std::vector<nlohmann::json> read_jsonl(const std::filesystem::path& path) {
  std::vector<nlohmann::json> rows;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

std::string make_tiny_model(const TempDir& dir, const std::string& name, int seed) {
  const std::string spec = std::string(DITGEN_TEST_DATA) + "/../../configs/models/fmnist-tiny.yaml";
  const std::string path = (dir / name).string();
  CliResult r = run_cli({"init", spec, "-o", path, "--seed", std::to_string(seed)}, dir.path());
  if (r.exit_code != 0) throw std::runtime_error("ditgen init failed: " + r.err);
  return path;
}

bool built_with_asan() {
#if defined(__SANITIZE_ADDRESS__)
  return true;
#else
  return false;
#endif
}

void skip_test_case(const std::string& why) { WARN(DITGEN_TEST_SKIP_MARKER ": " << why); }

bool no_cuda_device(Skipping what) {
  if (at::hasCUDA()) return false;
  report_skip(what, "no CUDA device: this test runs on the GPU machine");
  return true;
}

std::string shipped_model(const std::string& name) {
  return std::string(DITGEN_TEST_DATA) + "/../../models/" + name;
}

std::string train_recipe(const std::string& name) {
  const std::string configs = std::string(DITGEN_TEST_DATA) + "/../../configs/";
  std::ifstream in(configs + "train/" + name + ".yaml");
  std::string yaml(std::istreambuf_iterator<char>(in), {});
  const size_t models = yaml.find("../models/");
  if (models != std::string::npos) yaml.replace(models, 10, configs + "models/");
  return yaml;
}

bool fashion_mnist_missing(const std::string& skipped, Skipping what) {
  if (std::filesystem::exists("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")) return false;
  report_skip(what, "Fashion-MNIST not installed; " + skipped + " skipped");
  return true;
}

void check_generates_asked_classes(const std::string& model_file) {
  if (fashion_mnist_missing("the evaluation", Skipping::Rest)) return;
  TempDir dir;
  const CliResult r = run_cli(
      {"eval", "-m", model_file, "-n", "10", "--steps", "10", "--cfg-scale", "3", "--seed", "0", "--device", "cpu"},
      dir.path());
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(nlohmann::json::parse(r.out).at("class_accuracy").get<double>() >= 0.7);
}

CliFlowModels check_cli_flow(const TempDir& dir, const CliFlow& flow) {
  std::ofstream(dir / "spec.yaml") << flow.spec;
  CliFlowModels models{(dir / "model.safetensors").string(), ""};
  std::vector<std::string> init{"init", "spec.yaml", "-o", models.initial};
  init.insert(init.end(), flow.init_args.begin(), flow.init_args.end());
  REQUIRE(run_cli(init, dir.path()).exit_code == 0);
  auto r = run_cli({"generate", "-m", models.initial, "3", "--steps", "3", "-s", "1", "-o", "a.png", "--device", "cpu"},
                   dir.path());
  CHECK(r.exit_code == 0);
  CHECK(std::filesystem::exists(dir / "a.png"));
  r = run_cli({"info", models.initial}, dir.path());
  REQUIRE(r.exit_code == 0);
  CHECK(contains(r.out, flow.info_line));
  const std::string size = std::to_string(flow.refused_size);
  r = run_cli({"generate", "-m", models.initial, "3", "--steps", "3", "--height", size, "--width", size, "-o", "b.png",
               "--device", "cpu"}, dir.path());
  CHECK(r.exit_code == 2);
  CHECK(contains(r.err, flow.refusal));
  CHECK_FALSE(std::filesystem::exists(dir / "b.png"));
  if (fashion_mnist_missing("training", Skipping::Rest)) return models;
  // One sampling step for the trained model's final sample grid (100 images) keeps the run short.
  std::ofstream(dir / "train.yaml") << "model: spec.yaml\noutput: run\nsteps: 4\nbatch_size: 4\nlog_every: 2\n"
                                       "device: cpu\nbf16: false\nsample_every: 0\n"
                                       "sampler_defaults: {sampler: ddim, steps: 1, cfg_scale: 2.0}\n";
  r = run_cli({"train", "train.yaml"}, dir.path());
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  models.trained = (dir / "run" / "model.safetensors").string();
  return models;
}

void check_cuda_forward_matches_golden(LoadedModel& model, const std::map<std::string, at::Tensor>& tensors,
                                       const std::vector<std::string>& keys) {
  at::NoGradGuard no_grad;
  model.model->to(at::kCUDA);
  for (const std::string& k : keys) {
    INFO("golden " << k);
    const at::Tensor expected = tensors.at(k + ".out");
    const at::Tensor x = tensors.at(k + ".x").cuda(), t = tensors.at(k + ".t").cuda(), y = tensors.at(k + ".y").cuda();
    const at::Tensor out = model.model->forward(x, t, y).cpu();
    CHECK(close_relative(out, expected, 1e-4));
  }
  model.model->to(at::kCPU);
}

GenerationRequest short_guided_request() {
  GenerationRequest r;
  r.sampler = {"ddim", 6, 0.0};
  r.guidance = {2.0, 0};
  r.labels.assign(3, 4);
  r.seeds = {1, 2, 3};
  return r;
}

void check_captured_matches_eager(Generator& generator, const GenerationRequest& request) {
  generator.set_cuda_graphs(false);
  const at::Tensor eager = generator.generate(request).frames;
  generator.set_cuda_graphs(true);
  const at::Tensor captured = generator.generate(request).frames;
  CHECK(close_relative(captured, eager, 1e-5));
}

int64_t parameter_count(const torch::nn::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters()) n += p.numel();
  return n;
}

}  // namespace ditgen::test
