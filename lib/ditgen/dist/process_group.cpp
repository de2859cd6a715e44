#include "ditgen/dist/process_group.h"

#include <numeric>

// c10d's backend headers compile their classes only under these switches (TorchConfig sets them; the wheel
// imported without it does not).
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>
#if DITGEN_HAVE_NCCL
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "ditgen/core/error.h"

namespace ditgen::dist {

namespace {

// The first line of a c10d error: the rest is a C++ stack.
std::string first_line(const std::exception& e) {
  const std::string text = e.what();
  return text.substr(0, text.find('\n'));
}

[[noreturn]] void peer_failed(const std::string& what, const std::exception& e) {
  throw Error(ErrorKind::Runtime, what + " failed: a process of the run stopped or cannot be reached (" +
                                      first_line(e) + ")");
}

}  // namespace

bool nccl_available() { return DITGEN_HAVE_NCCL; }

PendingWork::PendingWork() = default;
PendingWork::PendingWork(c10::intrusive_ptr<c10d::Work> work) : work_(std::move(work)) {}
PendingWork::PendingWork(PendingWork&&) noexcept = default;
PendingWork& PendingWork::operator=(PendingWork&&) noexcept = default;
PendingWork::~PendingWork() = default;

void PendingWork::wait() {
  if (!work_) return;
  try {
    work_->wait();
  } catch (const std::exception& e) {
    peer_failed("an all-reduce", e);
  }
  work_.reset();
}

ProcessGroup::ProcessGroup(Rendezvous& rendezvous, const std::string& name, c10::Device device, std::vector<int> ranks) {
  const DistEnv& env = rendezvous.env();
  if (ranks.empty()) {
    ranks.resize(static_cast<size_t>(env.world_size));
    std::iota(ranks.begin(), ranks.end(), 0);
  }
  const auto me = std::find(ranks.begin(), ranks.end(), env.rank);
  if (me == ranks.end()) throw Error(ErrorKind::Runtime, "rank " + std::to_string(env.rank) + " joined group " + name + " without being a member");
  rank_ = static_cast<int>(me - ranks.begin());
  size_ = static_cast<int>(ranks.size());
  auto store = c10::make_intrusive<c10d::PrefixStore>("ditgen/group/" + name, rendezvous.store());
  const std::chrono::milliseconds timeout = rendezvous.store()->getTimeout();
  try {
    if (device.is_cuda()) {
#if DITGEN_HAVE_NCCL
      auto options = c10d::ProcessGroupNCCL::Options::create();
      options->timeout = timeout;
      backend_ = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank_, size_, options);
      backend_name_ = "nccl";
#else
      throw Error(ErrorKind::Usage, "this build of ditgen has no NCCL (LibTorch's CUDA backend or NCCL's header "
                                    "was missing at build time): distributed work on GPUs needs it");
#endif
    } else {
      auto options = c10d::ProcessGroupGloo::Options::create_default(timeout);
      options->timeout = timeout;
      backend_ = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank_, size_, options);
      backend_name_ = "gloo";
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(ErrorKind::Runtime, "the processes of the run could not form the " + name + " group (" + first_line(e) + ")");
  }
}

ProcessGroup::~ProcessGroup() = default;

PendingWork ProcessGroup::all_reduce_sum(at::Tensor& tensor) {
  std::vector<at::Tensor> tensors{tensor};
  try {
    return PendingWork(backend_->allreduce(tensors, c10d::AllreduceOptions{}));
  } catch (const std::exception& e) {
    peer_failed("an all-reduce", e);
  }
}

void ProcessGroup::broadcast(at::Tensor& tensor, int root) {
  std::vector<at::Tensor> tensors{tensor};
  c10d::BroadcastOptions options;
  options.rootRank = root;
  try {
    backend_->broadcast(tensors, options)->wait();
  } catch (const std::exception& e) {
    peer_failed("a broadcast", e);
  }
}

std::vector<at::Tensor> ProcessGroup::all_gather(const at::Tensor& tensor) {
  std::vector<at::Tensor> input{tensor.contiguous()};
  std::vector<std::vector<at::Tensor>> output(1);
  for (int r = 0; r < size_; ++r) output[0].push_back(at::empty_like(input[0]));
  try {
    backend_->allgather(output, input)->wait();
  } catch (const std::exception& e) {
    peer_failed("an all-gather", e);
  }
  return output[0];
}

double ProcessGroup::sum(double mine) {
  at::Tensor value = at::full({1}, mine, at::kDouble);
  all_reduce_sum(value).wait();
  return value.item<double>();
}

}  // namespace ditgen::dist
