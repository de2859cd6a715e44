// Ctrl-C for long runs: the first SIGINT asks to stop after the images in flight, the second abandons them.
#pragma once

namespace ditgen::cli {

// Installs the SIGINT handler (once).
void catch_interrupts();
// How many times SIGINT arrived since catch_interrupts().
int interrupt_count();

// Exit code of a run stopped by Ctrl-C (128 + SIGINT, the shell convention).
constexpr int kInterruptedExitCode = 130;

}  // namespace ditgen::cli
