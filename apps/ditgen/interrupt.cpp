#include "interrupt.h"

#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

namespace ditgen::cli {

namespace {

volatile std::sig_atomic_t g_interrupts = 0;
volatile std::sig_atomic_t g_train = 0;
// Set up front: isatty() is not async-signal-safe.
volatile std::sig_atomic_t g_terminal = 0;

extern "C" void on_interrupt(int signal) {
  const int saved_errno = errno;  // write() may change it under the interrupted code
  g_interrupts = g_interrupts + 1;
  // On a terminal, first clear the line: a progress bar (or the echoed ^C) would otherwise run into it.
  if (g_terminal) (void)!::write(STDERR_FILENO, "\r\033[K", 4);
  const char* text =
      interrupt_acknowledgement(g_train ? InterruptMode::Train : InterruptMode::Generate, signal, g_interrupts);
  (void)!::write(STDERR_FILENO, text, std::strlen(text));
  errno = saved_errno;
}

}  // namespace

const char* interrupt_acknowledgement(InterruptMode mode, int signal, int count) {
  const bool ctrl_c = signal == SIGINT;
  if (mode == InterruptMode::Train) {
    if (count > 1) return "ditgen: still stopping after this step with a checkpoint; please wait\n";
    return ctrl_c ? "ditgen: stopping after this step with a checkpoint (Ctrl-C)\n"
                  : "ditgen: stopping after this step with a checkpoint (terminate signal)\n";
  }
  if (count > 1)
    return ctrl_c ? "ditgen: abandoning the batch in flight (Ctrl-C again); finished images are kept\n"
                  : "ditgen: abandoning the batch in flight (terminate signal again); finished images are kept\n";
  return ctrl_c ? "ditgen: stopping after this batch; press Ctrl-C again to abandon it\n"
                : "ditgen: terminate signal: stopping after this batch; send it again (or press Ctrl-C) to abandon "
                  "it\n";
}

void catch_interrupts(InterruptMode mode) {
  g_train = mode == InterruptMode::Train;
  g_terminal = ::isatty(STDERR_FILENO);
  struct sigaction action {};
  action.sa_handler = on_interrupt;
  sigemptyset(&action.sa_mask);
  sigaddset(&action.sa_mask, SIGINT);  // one acknowledgement at a time
  sigaddset(&action.sa_mask, SIGTERM);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

int interrupt_count() { return g_interrupts; }

}  // namespace ditgen::cli
