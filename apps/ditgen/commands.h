// Subcommands of the ditgen CLI: each file adds its options to the app and returns what runs it.
#pragma once

#include <functional>
#include <string>

#include <CLI/CLI.hpp>

namespace ditgen::cli {

// A registered subcommand; `run` returns the process exit code (errors are thrown as ditgen::Error).
struct Command {
  CLI::App* app;
  std::function<int()> run;
};

Command add_generate_command(CLI::App& root);
Command add_info_command(CLI::App& root);
Command add_init_command(CLI::App& root);
Command add_quantize_command(CLI::App& root);
Command add_train_command(CLI::App& root);
Command add_train_classifier_command(CLI::App& root);
Command add_eval_command(CLI::App& root);
Command add_bench_command(CLI::App& root);
Command add_metadata_command(CLI::App& root);
Command add_scenes_command(CLI::App& root);

// The shipped default model, the text-to-image models/scenes-dit.safetensors; Error(Model) when it is not found.
std::string default_model_path();
// The shipped text-to-video model, for runs that ask for clips without -m; Error(Model) when none is found.
std::string default_video_model_path();

// The exit-code table printed in --help and the README.
const char* exit_code_help();

}  // namespace ditgen::cli
