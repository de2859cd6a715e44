// ditgen: command-line front end of libditgen. Parses flags, runs one subcommand, maps errors to exit codes.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include <c10/util/Exception.h>

#include "commands.h"
#include "ditgen/core/error.h"
#include "ditgen/core/log.h"
#include "ditgen/dist/launch.h"

namespace ditgen::cli {

const char* exit_code_help() {
  return "Exit codes:\n"
         "  0  success\n"
         "  1  runtime error: the computation failed (out of memory, device error, internal fault)\n"
         "  2  usage error: invalid flag or value (unknown class, steps <= 0, size not divisible by the patch)\n"
         "  3  input error: an input file (initial noise, prompts, config) is missing or malformed\n"
         "  4  model error: the model or VAE file is missing, corrupt or incompatible\n"
         "  5  output error: an output file or folder cannot be written\n"
         "  6  partial failure: some outputs of a batch failed, the others were written\n"
         "  7  a process of a distributed run died (killed or crashed); the others were stopped, finished\n"
         "      images kept\n"
         "  130 interrupted (Ctrl-C or SIGTERM): generate keeps finished images and the manifest,\n"
         "      train stops after the step in flight with a checkpoint; --resume finishes the run\n";
}

}  // namespace ditgen::cli

namespace {

int fail(ditgen::ErrorKind kind, const std::string& message) {
  std::fprintf(stderr, "ditgen: %s: %s\n", ditgen::kind_name(kind), message.c_str());
  return ditgen::exit_code(kind);
}

// LibTorch reports out-of-memory and device failures as c10::Error; keep the first line.
std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

}  // namespace

int main(int argc, char** argv) {
  // OpenMP threads that spin while waiting made CPU sampling 6x slower on shared 2-core VMs. libgomp reads
  // OMP_WAIT_POLICY only when it loads, so set it and start again, once, unless the user chose a policy.
  if (!std::getenv("OMP_WAIT_POLICY")) {
    ::setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    ::execv("/proc/self/exe", argv);  // on failure, carry on as we are
  }
  CLI::App app{"ditgen: diffusion transformers whose compute adapts to the work"};
  app.require_subcommand(1);
  app.footer(ditgen::cli::exit_code_help());
  app.set_version_flag("--version", std::string("ditgen ") + DITGEN_VERSION);
  bool verbose = false, quiet = false;
  app.add_flag("-v,--verbose", verbose, "Log details (FLOPs, timings) to stderr")->configurable(false);
  app.add_flag("--quiet", quiet, "Log errors only");
  int nproc_per_node = 1;
  CLI::Option* nproc_option = app.add_option("--nproc-per-node", nproc_per_node,
                 "generate, train: run as N processes on this host, each with a device (cuda:0..N-1 on a GPU "
                 "machine) and a share of the batches; the images are the ones one process makes, the training "
                 "the one process's at the same batch size (docs/DISTRIBUTED.md)")
      ->configurable(false);

  std::vector<ditgen::cli::Command> commands{ditgen::cli::add_generate_command(app),
                                             ditgen::cli::add_info_command(app),
                                             ditgen::cli::add_init_command(app),
                                             ditgen::cli::add_quantize_command(app),
                                             ditgen::cli::add_train_command(app),
                                             ditgen::cli::add_train_classifier_command(app),
                                             ditgen::cli::add_eval_command(app),
                                             ditgen::cli::add_bench_command(app),
                                             ditgen::cli::add_metadata_command(app),
                                             ditgen::cli::add_scenes_command(app)};
  for (auto& c : commands) {
    c.app->fallthrough();  // global flags work after the subcommand name too
    c.app->footer(ditgen::cli::exit_code_help());
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "ditgen: usage error: %s\nRun 'ditgen --help' or 'ditgen COMMAND --help'.\n", e.what());
    return ditgen::exit_code(ditgen::ErrorKind::Usage);
  }

  ditgen::log::setup_stderr(quiet ? ditgen::log::Level::Error : verbose ? ditgen::log::Level::Debug
                                                                         : ditgen::log::Level::Info);

  try {
    if (nproc_option->count() > 0 && !std::getenv("WORLD_SIZE")) {  // the launcher; its processes run the command
      if (!app.get_subcommand("generate")->parsed() && !app.get_subcommand("train")->parsed())
        return fail(ditgen::ErrorKind::Usage, "--nproc-per-node runs generate and train only");
      return ditgen::dist::launch_local(nproc_per_node,
                                        ditgen::dist::without_launch_flag(std::vector<std::string>(argv, argv + argc)));
    }
    for (auto& c : commands)
      if (c.app->parsed()) return c.run();
    return fail(ditgen::ErrorKind::Usage, "no command given");
  } catch (const ditgen::Error& e) {
    return fail(e.kind(), e.what());
  } catch (const c10::OutOfMemoryError& e) {
    return fail(ditgen::ErrorKind::Runtime, "out of memory: " + first_line(e.what_without_backtrace()) +
                                                " (try a smaller --batch-size)");
  } catch (const c10::Error& e) {
    return fail(ditgen::ErrorKind::Runtime, first_line(e.what_without_backtrace()));
  } catch (const std::bad_alloc&) {
    return fail(ditgen::ErrorKind::Runtime, "out of host memory (try a smaller --batch-size)");
  } catch (const std::exception& e) {
    return fail(ditgen::ErrorKind::Runtime, e.what());
  }
}
