#include "ditgen/dist/cfg_parallel.h"

#include "ditgen/core/error.h"

namespace ditgen::dist {

CfgPair::CfgPair(Rendezvous& rendezvous, c10::Device device) {
  const DistEnv& env = rendezvous.env();
  if (env.world_size % 2)
    throw Error(ErrorKind::Usage, "--cfg-parallel pairs the processes up: run an even number of them, not " +
                                      std::to_string(env.world_size));
  pair_ = env.rank / 2;
  pairs_ = env.world_size / 2;
  branch_ = env.rank % 2;
  const std::vector<int> members{2 * pair_, 2 * pair_ + 1};
  const std::string name = "cfg-pair-" + std::to_string(pair_);
  outputs_ = std::make_unique<ProcessGroup>(rendezvous, name, device, members);
  control_ = std::make_unique<ProcessGroup>(rendezvous, name + "-control", c10::kCPU, members);
}

std::pair<at::Tensor, at::Tensor> CfgPair::exchange(const at::Tensor& mine) {
  const std::vector<at::Tensor> both = outputs_->all_gather(mine);  // [B, Cout, H, W] x2, in branch order
  return {both[0], both[1]};
}

bool CfgPair::either(bool mine) { return control_->any(mine); }

}  // namespace ditgen::dist
