// Ctrl-C for long runs: the first SIGINT asks `generate` to stop after the images in flight (the second
// abandons them) and `train` to stop after the step in flight with a checkpoint. SIGTERM (kill, timeout)
// counts as a Ctrl-C as well. Each signal is acknowledged on stderr at once.
#pragma once

namespace ditgen::cli {

// What the first signal lets finish, which the acknowledgements name.
enum class InterruptMode {
  Generate,  // the batch in flight; a second signal abandons it
  Train,     // the step in flight, then a checkpoint; a second signal changes nothing
};

// Installs the SIGINT and SIGTERM handler (once per run).
void catch_interrupts(InterruptMode mode = InterruptMode::Generate);
// How many times SIGINT or SIGTERM arrived since catch_interrupts().
int interrupt_count();

// The line printed when signal `signal` (SIGINT or SIGTERM) arrives as the `count`-th (1, 2, ...) in `mode`;
// a static string, so the handler can write(2) it.
const char* interrupt_acknowledgement(InterruptMode mode, int signal, int count);

// Exit code of a run stopped by Ctrl-C or a caught SIGTERM (128 + SIGINT, the shell convention).
constexpr int kInterruptedExitCode = 130;

}  // namespace ditgen::cli
