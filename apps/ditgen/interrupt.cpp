#include "interrupt.h"

#include <csignal>

namespace ditgen::cli {

namespace {
volatile std::sig_atomic_t g_interrupts = 0;
extern "C" void on_sigint(int) { g_interrupts = g_interrupts + 1; }
}  // namespace

void catch_interrupts(bool terminate_too) {
  struct sigaction action {};
  action.sa_handler = on_sigint;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  if (terminate_too) sigaction(SIGTERM, &action, nullptr);
}

int interrupt_count() { return g_interrupts; }

}  // namespace ditgen::cli
