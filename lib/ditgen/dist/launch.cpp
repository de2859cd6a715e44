#include "ditgen/dist/launch.h"

#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include <c10/core/impl/VirtualGuardImpl.h>

#include "ditgen/core/device.h"
#include "ditgen/core/error.h"

extern char** environ;

namespace ditgen::dist {

namespace {

// The whole-number value of environment variable `name` in [low, high]; `fallback` when it is unset or empty.
int env_int(const char* name, int fallback, int low, int high) {
  const char* text = std::getenv(name);
  if (!text || !*text) return fallback;
  int value = 0;
  const auto [end, ec] = std::from_chars(text, text + std::strlen(text), value);
  if (ec != std::errc() || *end != '\0' || value < low || value > high)
    throw Error(ErrorKind::Usage, std::string(name) + "=" + text + " is not a whole number in " + std::to_string(low) +
                                      ".." + std::to_string(high));
  return value;
}

// A signal sent to the launcher alone (kill, timeout), to pass on. Ctrl-C at a terminal reaches every rank
// already (they share the launcher's process group), so signals the kernel sends are not passed on twice.
volatile sig_atomic_t g_forward_signal = 0;
void remember_signal(int sig, siginfo_t* info, void*) {
  if (info == nullptr || info->si_code == SI_USER || info->si_code == SI_QUEUE) g_forward_signal = sig;
}

}  // namespace

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw Error(ErrorKind::Runtime, std::string("cannot open a socket: ") + std::strerror(errno));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0;
  ::close(fd);
  if (!ok) throw Error(ErrorKind::Runtime, std::string("cannot find a free port: ") + std::strerror(errno));
  return ntohs(address.sin_port);
}

DistEnv read_dist_env() {
  DistEnv env;
  env.world_size = env_int("WORLD_SIZE", 1, 1, 1 << 20);
  if (!env.distributed()) return env;
  env.rank = env_int("RANK", -1, 0, env.world_size - 1);
  if (env.rank < 0) throw Error(ErrorKind::Usage, "WORLD_SIZE is set but RANK is not");
  env.local_rank = env_int("LOCAL_RANK", env.rank, 0, env.world_size - 1);
  const char* addr = std::getenv("MASTER_ADDR");
  env.master_addr = addr && *addr ? addr : "127.0.0.1";
  env.master_port = env_int("MASTER_PORT", 0, 1, 65535);
  if (env.master_port == 0) throw Error(ErrorKind::Usage, "a distributed run (WORLD_SIZE > 1) needs MASTER_PORT");
  const char* agent = std::getenv("TORCHELASTIC_USE_AGENT_STORE");
  env.agent_store = agent && std::strcmp(agent, "True") == 0;
  return env;
}

void make_current(c10::Device device) {
  if (device.is_cuda()) c10::impl::VirtualGuardImpl(c10::kCUDA).setDevice(device);
}

c10::Device rank_device(const std::string& text, const DistEnv& env) {
  const c10::Device device = parse_device(text);
  if (env.distributed() && device.is_cuda() && (text == "auto" || text == "cuda"))
    return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(env.local_rank));
  return device;
}

std::vector<std::string> without_launch_flag(const std::vector<std::string>& args) {
  std::vector<std::string> out;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--nproc-per-node") {
      ++i;  // and its value
      continue;
    }
    if (args[i].rfind("--nproc-per-node=", 0) == 0) continue;
    out.push_back(args[i]);
  }
  return out;
}

int launch_local(int nproc, const std::vector<std::string>& args) {
  if (nproc < 1 || nproc > 64) throw Error(ErrorKind::Usage, "--nproc-per-node must be in 1..64");
  const std::string port = std::to_string(free_port());
  std::vector<std::string> base_env;
  for (char** e = environ; *e; ++e) {
    const std::string var = *e;
    const std::string name = var.substr(0, var.find('='));
    if (name != "RANK" && name != "LOCAL_RANK" && name != "WORLD_SIZE" && name != "LOCAL_WORLD_SIZE" &&
        name != "MASTER_ADDR" && name != "MASTER_PORT" && name != "TORCHELASTIC_USE_AGENT_STORE")
      base_env.push_back(var);
  }
  // The host's cores shared out, unless the user chose: N ranks each using every core would thrash.
  if (!std::getenv("OMP_NUM_THREADS"))
    base_env.push_back("OMP_NUM_THREADS=" +
                       std::to_string(std::max(1u, std::thread::hardware_concurrency() / static_cast<unsigned>(nproc))));
  std::vector<char*> argv;
  std::vector<std::string> arg_copy = args;
  for (std::string& a : arg_copy) argv.push_back(a.data());
  argv.push_back(nullptr);

  struct sigaction forward {}, old_int{}, old_term{};
  forward.sa_sigaction = remember_signal;
  forward.sa_flags = SA_SIGINFO;
  ::sigaction(SIGINT, &forward, &old_int);
  ::sigaction(SIGTERM, &forward, &old_term);
  std::vector<pid_t> pids;
  auto signal_all = [&](int sig) {
    for (pid_t p : pids)
      if (p > 0) ::kill(p, sig);
  };
  for (int rank = 0; rank < nproc; ++rank) {
    std::vector<std::string> env = base_env;
    for (const std::string& var : {"RANK=" + std::to_string(rank), "LOCAL_RANK=" + std::to_string(rank),
                                   "WORLD_SIZE=" + std::to_string(nproc), "LOCAL_WORLD_SIZE=" + std::to_string(nproc),
                                   std::string("MASTER_ADDR=127.0.0.1"), "MASTER_PORT=" + port})
      env.push_back(var);
    std::vector<char*> envp;
    for (std::string& v : env) envp.push_back(v.data());
    envp.push_back(nullptr);
    pid_t pid = 0;
    if (const int rc = ::posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv.data(), envp.data()); rc != 0) {
      signal_all(SIGTERM);
      for (pid_t p : pids) ::waitpid(p, nullptr, 0);
      throw Error(ErrorKind::Runtime, std::string("cannot start rank ") + std::to_string(rank) + ": " + std::strerror(rc));
    }
    pids.push_back(pid);
  }

  int result = 0, running = nproc;
  bool failed = false;
  auto deadline = std::chrono::steady_clock::time_point::max();
  while (running > 0) {
    if (g_forward_signal) {
      signal_all(g_forward_signal);
      g_forward_signal = 0;
    }
    if (failed && std::chrono::steady_clock::now() > deadline) signal_all(SIGKILL);
    int status = 0;
    const pid_t done = ::waitpid(-1, &status, WNOHANG);
    if (done == 0 || (done < 0 && errno == EINTR)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    if (done < 0) break;  // no children left
    for (pid_t& p : pids)
      if (p == done) p = -1;
    --running;
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : kRankFailedExitCode;
    if (code == exit_code(ErrorKind::Partial)) {  // finished its share, some outputs failed: the others go on
      if (!failed) result = code;
    } else if (code != 0 && !failed) {
      failed = true;
      result = code;
      signal_all(SIGTERM);
      deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    }
  }
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGTERM, &old_term, nullptr);
  return result;
}

}  // namespace ditgen::dist
