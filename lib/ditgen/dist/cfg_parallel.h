// CFG-parallel generation (docs/DISTRIBUTED.md): the processes of a run pair up, ranks 2p and 2p + 1; in each
// guided step the first computes the conditional prediction and the second the guidance branch (the
// unconditional one, or FlexiDiT's weak model at its own patch size), and they swap outputs, so a small batch
// takes about one forward's time per step instead of two. Both continue from the same combined prediction;
// the pair's first process writes the images. Pairs take the run's batches as data-parallel processes do.
#pragma once

#include <memory>

#include "ditgen/dist/process_group.h"
#include "ditgen/sampling/guidance.h"

namespace ditgen::dist {

class CfgPair : public sampling::BranchExchange {
 public:
  // This process's pair, with its outputs on `device`. Error(Usage) for an odd number of processes.
  CfgPair(Rendezvous& rendezvous, c10::Device device);

  int pair() const { return pair_; }                       // 0 .. pairs() - 1: the run's shard it makes
  int pairs() const { return pairs_; }
  bool writer() const { return branch_ == 0; }             // the pair's first process writes its images
  int branch() const override { return branch_; }
  std::pair<at::Tensor, at::Tensor> exchange(const at::Tensor& mine) override;
  // True in both processes of the pair once either passes true (they stop between the same batches).
  bool either(bool mine);

 private:
  int pair_ = 0, pairs_ = 1, branch_ = 0;
  std::unique_ptr<ProcessGroup> outputs_, control_;
};

}  // namespace ditgen::dist
