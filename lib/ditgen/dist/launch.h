// Processes of a distributed run (docs/DISTRIBUTED.md): who this one is, from the environment every PyTorch
// launcher sets (torchrun, a cluster's), and a one-host launcher that starts the local ones itself.
#pragma once

#include <string>
#include <vector>

#include <c10/core/Device.h>

namespace ditgen::dist {

// Exit code of a launcher whose rank died on a signal (killed, crashed); a rank that exits with a code of its
// own passes that code on.
constexpr int kRankFailedExitCode = 7;

struct DistEnv {
  int rank = 0, world_size = 1, local_rank = 0;
  std::string master_addr;
  int master_port = 0;
  // torchrun's agent hosts the store itself (TORCHELASTIC_USE_AGENT_STORE): every rank is then its client.
  bool agent_store = false;

  bool distributed() const { return world_size > 1; }
};

// This process's place: RANK, WORLD_SIZE, LOCAL_RANK (default RANK), MASTER_ADDR (default 127.0.0.1),
// MASTER_PORT. No WORLD_SIZE, or 1: one process. Error(Usage) naming the variable for a value that is not a
// whole number in range, a rank outside 0..WORLD_SIZE-1, or a distributed run without MASTER_PORT.
DistEnv read_dist_env();

// The device of this process for a --device `text`: in a distributed run "auto" and "cuda" mean
// cuda:LOCAL_RANK (one GPU a rank); otherwise, and for "cpu" and "cuda:N", what parse_device says.
c10::Device rank_device(const std::string& text, const DistEnv& env);
// Makes a CUDA `device` this process's current one, so what takes the current device (NCCL, streams, library
// handles) uses the rank's GPU; nothing for other devices.
void make_current(c10::Device device);

// A TCP port the loopback interface has free now (the kernel's pick). Error(Runtime) when there is none.
int free_port();

// Starts `nproc` copies of this program (/proc/self/exe) with arguments `args` (args[0] included), rank i
// with RANK=LOCAL_RANK=i, WORLD_SIZE=nproc, MASTER_ADDR=127.0.0.1 and a free MASTER_PORT, and waits for them.
// SIGINT and SIGTERM sent to the launcher are passed on to them (a terminal's Ctrl-C reaches them directly).
// When one fails, the others get SIGTERM (so a generation keeps its finished images) and, 30 s later,
// SIGKILL; a rank that exits with the partial-failure code (6) has finished its share and stops nobody.
// Returns the first failing rank's exit code, kRankFailedExitCode when it died on a signal; else 6 when a rank
// had failed outputs, else 0. Error(Usage) for nproc outside 1..64, Error(Runtime) when a process cannot be
// started.
int launch_local(int nproc, const std::vector<std::string>& args);

// `args` without the launcher's own flag (--nproc-per-node N or --nproc-per-node=N) and its value.
std::vector<std::string> without_launch_flag(const std::vector<std::string>& args);

}  // namespace ditgen::dist
