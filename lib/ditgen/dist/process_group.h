// Collectives between the processes of a distributed run, on PyTorch's c10d backends (the ones in the
// LibTorch ditgen links): NCCL between GPUs where ditgen was built with LibTorch's CUDA and NCCL's header,
// Gloo otherwise (CPU tensors). The rendezvous's store introduces the processes to each other; tensors travel
// here.
#pragma once

#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <c10/core/Device.h>
#include <c10/util/intrusive_ptr.h>

#include "ditgen/dist/rendezvous.h"

namespace c10d {
class Backend;
class Work;
}  // namespace c10d

namespace ditgen::dist {

// An all-reduce in flight; wait() before reading its tensor.
class PendingWork {
 public:
  PendingWork();
  explicit PendingWork(c10::intrusive_ptr<c10d::Work> work);
  PendingWork(PendingWork&&) noexcept;
  PendingWork& operator=(PendingWork&&) noexcept;
  ~PendingWork();
  // Error(Runtime) when a process of the group failed.
  void wait();

 private:
  c10::intrusive_ptr<c10d::Work> work_;
};

class ProcessGroup {
 public:
  // The processes `ranks` (global ranks, ascending; empty: all) form a group named `name` (unique in the run)
  // whose tensors live on `device`; each member calls this, the others must not. Its rank is the place in
  // `ranks`. Error(Runtime) when the members do not all arrive within the rendezvous's time, Error(Usage)
  // for NCCL asked of a build without it.
  ProcessGroup(Rendezvous& rendezvous, const std::string& name, c10::Device device, std::vector<int> ranks = {});
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  const std::string& backend_name() const { return backend_name_; }

  // Sums `tensor` (contiguous, on the group's device) over the group in place, asynchronously.
  PendingWork all_reduce_sum(at::Tensor& tensor);
  // Rank `root`'s `tensor` into every member's, in place.
  void broadcast(at::Tensor& tensor, int root = 0);
  // Every member's `tensor` (same shape and type everywhere), in rank order.
  std::vector<at::Tensor> all_gather(const at::Tensor& tensor);
  // The sum of every member's `mine` (a CPU group's host-side agreement: a loss to average, a flag to stop on).
  double sum(double mine);
  // True in every member once any member passes true.
  bool any(bool mine) { return sum(mine ? 1 : 0) > 0; }

 private:
  c10::intrusive_ptr<c10d::Backend> backend_;
  int rank_ = 0, size_ = 1;
  std::string backend_name_;
};

// Whether this build can run NCCL groups (LibTorch's CUDA backend and NCCL's header were found).
bool nccl_available();

}  // namespace ditgen::dist
