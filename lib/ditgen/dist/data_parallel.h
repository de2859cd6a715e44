// Data-parallel training's exchange (docs/DISTRIBUTED.md): every rank runs the forward and backward pass of
// its share of the global batch; the gradients are averaged over the ranks in buckets of about 25 MB, each
// all-reduced as soon as the backward pass has computed all of its gradients, so the exchange overlaps the rest
// of the backward pass (the scheme of PyTorch's DistributedDataParallel, on the same c10d backends).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <ATen/ATen.h>

#include "ditgen/dist/process_group.h"

namespace ditgen::dist {

class DataParallel {
 public:
  // `gradients`: the group the buckets are all-reduced in (on the parameters' device); `control`: a CPU (Gloo)
  // group for the small host-side agreements. `parameters`: the trainable ones, the same list in every rank.
  DataParallel(ProcessGroup& gradients, ProcessGroup& control, std::vector<at::Tensor> parameters,
               int64_t bucket_bytes = 25ll << 20);
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  // Error(Runtime) unless every rank holds the same `fingerprint` (e.g. the step a checkpoint resumed at and
  // a sum of the weights): ranks that start apart would train apart.
  void check_same(const std::vector<double>& fingerprint, const std::string& what);
  // After the backward pass: all-reduces the buckets the backward pass has not started yet (a parameter it
  // gave no gradient counts as zeros, as the optimizer counts it), waits for all, and sets every parameter's
  // gradient to the mean over the ranks. Error(Runtime) when a rank failed.
  void finish();
  // True in every rank once any rank passes true (an interrupted run stops at the same step everywhere).
  bool any(bool mine);

 private:
  struct Bucket;
  // Called by a parameter's gradient hook: copies it into its bucket and starts the buckets that are complete,
  // in order, so every rank issues the same all-reduces in the same order.
  void gradient_ready(size_t parameter, const at::Tensor& grad);
  void launch_ready_buckets(bool all);

  ProcessGroup& gradients_;
  ProcessGroup& control_;
  std::vector<at::Tensor> parameters_;
  std::vector<unsigned> hooks_;
  std::vector<std::unique_ptr<Bucket>> buckets_;
  struct Place {
    size_t bucket, member;  // its bucket, and its place among the bucket's members
    int64_t offset;         // in the bucket's elements
  };
  std::vector<Place> place_;  // per parameter
  size_t next_launch_ = 0;    // buckets before it have started this step
};

}  // namespace ditgen::dist
