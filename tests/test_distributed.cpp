// Distributed runs on the CPU (docs/DISTRIBUTED.md): data-parallel generation and training over local processes
// that meet through c10d's TCPStore on the loopback address (and exchange tensors through Gloo), started by
// `--nproc-per-node` or, as torchrun starts them, from the environment.
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "catch.h"
#include "ditgen/dist/data_parallel.h"
#include "ditgen/dist/launch.h"
#include "ditgen/dist/process_group.h"
#include "ditgen/dist/rendezvous.h"
#include "ditgen/io/png.h"
#include "ditgen/io/tensor_io.h"
#include "helpers.h"

using namespace ditgen;
using ditgen::test::CliEnv;
using ditgen::test::CliResult;
using ditgen::test::contains;
using ditgen::test::run_cli;
using ditgen::test::TempDir;

namespace {

std::string file_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// The files a folder holds whose names start with '.': an atomic write's unfinished temporaries.
int hidden_files(const std::filesystem::path& dir) {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) n += e.path().filename().string()[0] == '.';
  return n;
}

// A long two-process generation (40 images, a batch each) into dir/o with its manifest: `interrupt` gets the
// launcher's pid once, when the first image is written; `extra` flags follow.
CliResult long_run(const TempDir& dir, const std::string& model, const std::function<void(int pid)>& interrupt,
                   const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args{"generate", "--nproc-per-node", "2", "-m", model, "bag", "coat", "-n", "20", "-s", "1",
                                "--steps", "50", "--batch-size", "1", "-o", "o/{index}.png", "--manifest", "o/m.jsonl",
                                "--device", "cpu"};
  args.insert(args.end(), extra.begin(), extra.end());
  bool called = false;
  CliEnv watch;
  watch.while_running = [&](int pid, const std::string&) {
    if (interrupt && !called && std::filesystem::exists(dir / "o" / "0.png")) {
      interrupt(pid);
      called = true;
    }
    return true;
  };
  return run_cli(args, dir.path(), watch);
}

}  // namespace

TEST_CASE("a data-parallel generation writes the bytes one process writes, and one manifest", "[dist][cli]") {
  TempDir dir;
  const std::string model = test::make_tiny_model(dir);
  auto generate = [&](const std::string& folder, std::vector<std::string> extra) {
    std::vector<std::string> args{"generate", "-m", model, "bag", "coat", "sneaker", "-n", "3", "-s", "11",
                                  "--steps", "2", "--batch-size", "2", "-o", folder + "/{index}.png",
                                  "--manifest", folder + "/m.jsonl", "--grid", folder + "/sheet.png", "--device", "cpu"};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_cli(args, dir.path());
  };
  REQUIRE(generate("one", {}).exit_code == 0);
  for (const std::string nproc : {"2", "3"}) {  // 5 batches: shared unevenly either way
    const std::string folder = "n" + nproc;
    CliResult r = generate(folder, {"--nproc-per-node", nproc});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    for (int i = 0; i < 9; ++i) {
      const std::string name = std::to_string(i) + ".png";
      INFO(name);
      CHECK(file_bytes(dir / folder / name) == file_bytes(dir / "one" / name));
    }
    CHECK(file_bytes(dir / folder / "sheet.png") == file_bytes(dir / "one" / "sheet.png"));  // rank 0 reads the rest back
    const std::vector<nlohmann::json> rows = test::read_jsonl(dir / folder / "m.jsonl");
    REQUIRE(rows.size() == 9);
    for (const nlohmann::json& row : rows) {
      CHECK(row["status"] == "ok");
      CHECK(row["parameters"]["seed"] == test::read_jsonl(dir / "one" / "m.jsonl")[row["index"].get<size_t>()]["seed"]);
    }
  }
  // --resume over two processes finds everything made and makes nothing.
  CliResult again = generate("n2", {"--nproc-per-node", "2", "--resume"});
  CHECK(again.exit_code == 0);
  CHECK(contains(again.err, "0 generated, 9 already complete"));
  // Only generate runs distributed; the flag's value is checked.
  CHECK(run_cli({"info", model, "--nproc-per-node", "2"}, dir.path()).exit_code == 2);
  CHECK(generate("bad", {"--nproc-per-node", "0"}).exit_code == 2);
}

TEST_CASE("ranks started from the environment, as torchrun starts them, share the batches", "[dist][cli]") {
  TempDir dir;
  const std::string model = test::make_tiny_model(dir);
  const std::string port = std::to_string(dist::free_port());
  auto rank = [&](int r) {
    return run_cli({"generate", "-m", model, "bag", "coat", "-n", "2", "-s", "3", "--steps", "2", "--batch-size", "1",
                    "-o", "env/{index}.png", "--manifest", "env/m.jsonl", "--device", "cpu"},
                   dir.path(),
                   CliEnv{"", {"RANK=" + std::to_string(r), "WORLD_SIZE=2", "MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + port}});
  };
  CliResult second;
  std::thread other([&] { second = rank(1); });
  const CliResult first = rank(0);
  other.join();
  INFO(first.err << second.err);
  CHECK(first.exit_code == 0);
  CHECK(second.exit_code == 0);
  CHECK(test::read_jsonl(dir / "env/m.jsonl").size() == 4);  // rank 0 writes it for both
  REQUIRE(run_cli({"generate", "-m", model, "bag", "coat", "-n", "2", "-s", "3", "--steps", "2", "--batch-size", "1",
                   "-o", "solo/{index}.png", "--device", "cpu"},
                  dir.path()).exit_code == 0);
  for (int i = 0; i < 4; ++i)
    CHECK(file_bytes(dir / "env" / (std::to_string(i) + ".png")) == file_bytes(dir / "solo" / (std::to_string(i) + ".png")));
  // Each rank prints the images it wrote; the two together print all four.
  CHECK(std::count(first.out.begin(), first.out.end(), '\n') + std::count(second.out.begin(), second.out.end(), '\n') == 4);
}

TEST_CASE("a distributed environment that does not add up is refused before any work", "[dist][errors]") {
  TempDir dir;
  const std::string model = test::make_tiny_model(dir);
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases{
      {{"WORLD_SIZE=2"}, "WORLD_SIZE is set but RANK is not"},
      {{"WORLD_SIZE=2", "RANK=2", "MASTER_PORT=29999"}, "RANK=2 is not a whole number in 0..1"},
      {{"WORLD_SIZE=two", "RANK=0"}, "WORLD_SIZE=two is not a whole number"},
      {{"WORLD_SIZE=2", "RANK=0"}, "needs MASTER_PORT"},
      {{"WORLD_SIZE=2", "RANK=0", "MASTER_PORT=70000"}, "MASTER_PORT=70000 is not a whole number in 1..65535"}};
  for (const auto& [env, message] : cases) {
    INFO(message);
    CliResult r = run_cli({"generate", "-m", model, "bag", "-o", "x.png", "--device", "cpu"}, dir.path(), CliEnv{"", env});
    CHECK(r.exit_code == 2);
    CHECK(contains(r.err, message));
    CHECK_FALSE(std::filesystem::exists(dir / "x.png"));
  }
  CHECK(dist::without_launch_flag({"ditgen", "generate", "--nproc-per-node", "2", "bag", "--nproc-per-node=3", "-v"}) ==
        std::vector<std::string>{"ditgen", "generate", "bag", "-v"});
}

TEST_CASE("a rank killed mid-run ends the job with exit 7, finished images kept and none partial", "[dist][cli]") {
  TempDir dir;
  const std::string model = test::make_tiny_model(dir);
  bool killed = false;
  CliResult r = long_run(dir, model, [&](int pid) {
    std::ifstream children("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
    int rank0 = 0, rank1 = 0;
    if (children >> rank0 >> rank1) {  // started in rank order
      ::kill(rank1, SIGKILL);
      killed = true;
    }
  });
  INFO(r.err);
  REQUIRE(killed);
  CHECK(r.exit_code == dist::kRankFailedExitCode);
  CHECK(hidden_files(dir / "o") == 0);
  int images = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir / "o"))
    if (e.path().extension() == ".png") {
      CHECK_NOTHROW(io::read_png(e.path()));  // whole
      ++images;
    }
  CHECK(images >= 1);
  CHECK(images < 40);
  // Rank 0 stopped between batches and wrote the manifest; --resume finishes the run.
  const std::vector<nlohmann::json> rows = test::read_jsonl(dir / "o" / "m.jsonl");
  CHECK(rows.size() == 40);
  CliResult resumed = long_run(dir, model, {}, {"--resume"});
  CHECK(resumed.exit_code == 0);
  for (const nlohmann::json& row : test::read_jsonl(dir / "o" / "m.jsonl")) CHECK(row["status"] != "pending");
}

TEST_CASE("SIGTERM to the launcher reaches every rank: each stops between batches, exit 130", "[dist][cli]") {
  TempDir dir;
  const std::string model = test::make_tiny_model(dir);
  bool sent = false;
  CliResult r = long_run(dir, model, [&](int pid) {
    ::kill(pid, SIGTERM);  // the launcher alone, as `kill` or a job scheduler sends it
    sent = true;
  });
  INFO(r.err);
  REQUIRE(sent);
  CHECK(r.exit_code == 130);
  CHECK(hidden_files(dir / "o") == 0);
  int ok = 0, cancelled = 0;
  for (const nlohmann::json& row : test::read_jsonl(dir / "o" / "m.jsonl")) {  // both ranks' items, gathered
    ok += row["status"] == "ok";
    cancelled += row["status"] == "cancelled";
  }
  CHECK(ok >= 1);
  CHECK(cancelled >= 1);
  CHECK(ok + cancelled == 40);
}

TEST_CASE("a prompt line that fails stops no rank: the others finish, exit 6", "[dist][cli]") {
  TempDir dir;
  const std::string model = test::make_tiny_model(dir);
  { std::ofstream(dir / "p.txt") << "bag\nnot-a-class\ncoat\nsneaker\n"; }
  CliResult r = run_cli({"generate", "--nproc-per-node", "2", "-m", model, "-f", "p.txt", "-n", "2", "-s", "4",
                         "--steps", "2", "--batch-size", "1", "-o", "o/{index}.png", "--device", "cpu"},
                        dir.path());
  INFO(r.err);
  CHECK(r.exit_code == 6);
  int images = 0, failed = 0;
  for (const nlohmann::json& row : test::read_jsonl(dir / "o" / "manifest.jsonl")) {
    images += row["status"] == "ok";
    failed += row["status"] == "failed";
  }
  CHECK(images == 6);
  CHECK(failed >= 1);
}

namespace {

// The tiny class model's CPU recipe for `steps` steps of batch `batch` into `output`, as dir/NAME.yaml.
std::string tiny_recipe(const TempDir& dir, const std::string& name, int steps, int batch, int checkpoint_every) {
  std::string yaml = test::train_recipe("fmnist-tiny-cpu");
  auto set = [&](const std::string& key, const std::string& value) {
    const size_t at = yaml.find("\n" + key + ":") + 1;
    yaml.replace(at, yaml.find('\n', at) - at, key + ": " + value);
  };
  set("output", name);
  set("steps", std::to_string(steps));
  set("batch_size", std::to_string(batch));
  set("log_every", "10");
  set("checkpoint_every", std::to_string(checkpoint_every));
  std::ofstream(dir / (name + ".yaml")) << yaml;
  return name + ".yaml";
}

// The largest difference between two files' tensors of the same names (floating ones).
double largest_difference(const std::filesystem::path& a, const std::filesystem::path& b) {
  const auto x = io::load_tensors(a), y = io::load_tensors(b);
  REQUIRE(x.size() == y.size());
  double most = 0;
  for (const auto& [name, t] : x)
    if (t.is_floating_point()) most = std::max(most, (t.to(at::kDouble) - y.at(name).to(at::kDouble)).abs().max().item<double>());
  return most;
}

}  // namespace

TEST_CASE("50 data-parallel training steps on two processes equal one process's at the same batch", "[dist][train]") {
  if (test::fashion_mnist_missing("data-parallel training")) return;
  TempDir dir;
  auto train = [&](const std::string& recipe, std::vector<std::string> extra) {
    std::vector<std::string> args{"train", recipe};
    args.insert(args.end(), extra.begin(), extra.end());
    CliResult r = run_cli(args, dir.path());
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    return r;
  };
  train(tiny_recipe(dir, "one", 50, 8, 25), {});
  const CliResult two = train(tiny_recipe(dir, "two", 50, 8, 25), {"--nproc-per-node", "2"});
  CHECK(two.out == "two/model.safetensors\n");  // rank 0 alone writes and reports the model
  // Each process draws the whole batch's noise and keeps its half: only float summation order differs.
  CHECK(largest_difference(dir / "one" / "model.safetensors", dir / "two" / "model.safetensors") < 2e-4);
  CHECK(largest_difference(dir / "one" / "checkpoint.safetensors", dir / "two" / "checkpoint.safetensors") < 2e-4);
  const auto one_log = test::read_jsonl(dir / "one" / "log.jsonl"), two_log = test::read_jsonl(dir / "two" / "log.jsonl");
  REQUIRE(one_log.size() == 5);
  REQUIRE(two_log.size() == 5);
  for (size_t i = 0; i < 5; ++i) CHECK(two_log[i]["loss"].get<double>() == Approx(one_log[i]["loss"].get<double>()).epsilon(1e-3));
  // A distributed run stopped at step 20 and resumed is the uninterrupted distributed run, exactly.
  train(tiny_recipe(dir, "three", 50, 8, 25), {"--nproc-per-node", "2", "--stop-after", "20"});
  train("three.yaml", {"--nproc-per-node", "2", "--resume"});
  CHECK(largest_difference(dir / "two" / "checkpoint.safetensors", dir / "three" / "checkpoint.safetensors") == 0);
  // A batch that does not divide among the processes is refused before any step.
  CliResult odd = run_cli({"train", tiny_recipe(dir, "odd", 50, 7, 25), "--nproc-per-node", "2"}, dir.path());
  CHECK(odd.exit_code == 2);
  CHECK(contains(odd.err, "batch_size 7 does not divide among 2 processes"));
  CHECK_FALSE(std::filesystem::exists(dir / "odd" / "checkpoint.safetensors"));
}

TEST_CASE("a rank killed mid-training ends the job with exit 7, its last checkpoint whole", "[dist][train]") {
  if (test::fashion_mnist_missing("data-parallel training")) return;
  TempDir dir;
  bool killed = false;
  CliEnv watch;
  watch.while_running = [&](int pid, const std::string&) {
    if (!std::filesystem::exists(dir / "long" / "checkpoint.safetensors")) return true;
    std::ifstream children("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
    int rank0 = 0, rank1 = 0;
    if (children >> rank0 >> rank1) ::kill(rank1, SIGKILL);
    killed = true;
    return false;
  };
  CliResult r = run_cli({"train", tiny_recipe(dir, "long", 100000, 4, 5), "--nproc-per-node", "2"}, dir.path(), watch);
  INFO(r.err);
  REQUIRE(killed);
  CHECK(r.exit_code == dist::kRankFailedExitCode);
  CHECK(hidden_files(dir / "long") == 0);  // no unfinished checkpoint
  CHECK_NOTHROW(io::load_tensors(dir / "long" / "checkpoint.safetensors"));
  CHECK_FALSE(std::filesystem::exists(dir / "long" / "model.safetensors"));
}

TEST_CASE("CFG-parallel pairs split each image's two branches and make one process's images", "[dist][cli]") {
  TempDir dir;
  const std::string model = test::shipped_model("fmnist-flexidit.safetensors");
  // The plain guided steps, and a FlexiDiT schedule whose branches run at different patch sizes (weak-model
  // guidance in the middle steps): the pair's processes then do unequal work.
  for (const std::string schedule : {"dense", "flexi-50-guided"}) {
    INFO(schedule);
    auto generate = [&](const std::string& folder, std::vector<std::string> extra) {
      std::vector<std::string> args{"generate", "-m", model, "bag", "sneaker", "coat", "-s", "5", "--steps", "6",
                                    "--schedule", schedule, "--batch-size", "2", "-o", folder + "/{index}.png",
                                    "--manifest", folder + "/m.jsonl", "--device", "cpu"};
      args.insert(args.end(), extra.begin(), extra.end());
      return run_cli(args, dir.path());
    };
    REQUIRE(generate("one-" + schedule, {}).exit_code == 0);
    for (const std::string nproc : {"2", "4"}) {  // one pair; two pairs sharing the batches
      const std::string folder = "pairs" + nproc + "-" + schedule;
      CliResult r = generate(folder, {"--nproc-per-node", nproc, "--cfg-parallel"});
      INFO(r.err);
      REQUIRE(r.exit_code == 0);
      CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 3);  // each image reported once, by its writer
      CHECK(test::read_jsonl(dir / folder / "m.jsonl").size() == 3);
      for (int i = 0; i < 3; ++i) {
        // A branch's forward over b images instead of the doubled batch's 2b may round differently.
        const io::Image a = io::read_png(dir / ("one-" + schedule) / (std::to_string(i) + ".png"));
        const io::Image b = io::read_png(dir / folder / (std::to_string(i) + ".png"));
        REQUIRE(a.pixels.size() == b.pixels.size());
        int most = 0;
        for (size_t k = 0; k < a.pixels.size(); ++k) most = std::max(most, std::abs(a.pixels[k] - b.pixels[k]));
        CHECK(most <= 2);
      }
    }
  }
  // It needs pairs of processes.
  CliResult alone = run_cli({"generate", "-m", model, "bag", "--cfg-parallel", "-o", "x.png", "--device", "cpu"}, dir.path());
  CHECK(alone.exit_code == 2);
  CHECK(contains(alone.err, "add --nproc-per-node 2"));
  CliResult odd = run_cli({"generate", "-m", model, "bag", "--cfg-parallel", "--nproc-per-node", "3", "-o", "x.png",
                           "--device", "cpu"},
                          dir.path());
  CHECK(odd.exit_code == 2);
  CHECK(contains(odd.err, "run an even number of them, not 3"));
  CHECK_FALSE(std::filesystem::exists(dir / "x.png"));
}

namespace {

// One process as a whole run: its groups on `device` reduce, gather and broadcast, and the data-parallel
// exchange gives every parameter its own gradient back (the mean over one rank), in buckets of a few bytes
// so each parameter fills one, and zeros for a parameter the loss does not use.
void check_single_rank_groups(c10::Device device, const std::string& backend) {
  dist::DistEnv env;
  env.world_size = 1;
  env.master_addr = "127.0.0.1";
  env.master_port = dist::free_port();
  dist::Rendezvous rendezvous(env);
  dist::ProcessGroup group(rendezvous, "tensors", device), control(rendezvous, "control", c10::kCPU);
  CHECK(group.backend_name() == backend);
  CHECK(control.backend_name() == "gloo");
  at::Tensor x = at::arange(6, at::TensorOptions().dtype(at::kFloat).device(device));
  group.all_reduce_sum(x).wait();
  group.broadcast(x, 0);
  const std::vector<at::Tensor> gathered = group.all_gather(x);
  REQUIRE(gathered.size() == 1);
  CHECK(at::equal(gathered[0].cpu(), at::arange(6, at::kFloat)));
  CHECK(control.any(true));
  CHECK_FALSE(control.any(false));

  at::manual_seed(0);
  const auto options = at::TensorOptions().device(device);
  std::vector<at::Tensor> params{at::randn({3, 4}, options).requires_grad_(), at::randn({4}, options).requires_grad_(),
                                 at::randn({2}, options).requires_grad_()};  // the last one unused
  const at::Tensor input = at::randn({5, 3}, options);
  auto loss = [&] { return (at::matmul(input, params[0]) + params[1]).pow(2).sum(); };
  loss().backward();
  std::vector<at::Tensor> expected;
  for (auto& p : params) {
    expected.push_back(p.grad().defined() ? p.grad().clone() : at::zeros_like(p));
    p.mutable_grad() = at::Tensor();
  }
  dist::DataParallel data_parallel(group, control, params, /*bucket_bytes=*/8);
  for (int step = 0; step < 2; ++step) {  // buckets are reused step after step
    loss().backward();
    data_parallel.finish();
    for (size_t k = 0; k < params.size(); ++k) {
      REQUIRE(params[k].grad().defined());
      CHECK(at::allclose(params[k].grad().cpu(), expected[k].cpu()));
      params[k].mutable_grad() = at::Tensor();
    }
  }
  CHECK_FALSE(data_parallel.any(false));
  data_parallel.check_same({1.0, 2.0}, "weights");
}

}  // namespace

TEST_CASE("one process's Gloo groups and data-parallel exchange on the CPU", "[dist]") {
  check_single_rank_groups(c10::kCPU, "gloo");
}

TEST_CASE("one process's NCCL groups and data-parallel exchange on a GPU", "[dist][cuda]") {
  if (test::no_cuda_device()) return;
  REQUIRE(dist::nccl_available());
  check_single_rank_groups(c10::Device(c10::kCUDA, 0), "nccl");
}
