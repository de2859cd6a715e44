// Ctrl-C for long runs: the first SIGINT asks `generate` to stop after the images in flight (the second
// abandons them) and `train` to stop after the step in flight with a checkpoint.
#pragma once

namespace ditgen::cli {

// Installs the SIGINT handler (once); with `terminate_too`, SIGTERM (kill, timeout) counts as one as well.
void catch_interrupts(bool terminate_too = false);
// How many times SIGINT (or a caught SIGTERM) arrived since catch_interrupts().
int interrupt_count();

// Exit code of a run stopped by Ctrl-C or a caught SIGTERM (128 + SIGINT, the shell convention).
constexpr int kInterruptedExitCode = 130;

}  // namespace ditgen::cli
