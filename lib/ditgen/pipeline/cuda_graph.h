// A function of fixed-shape CUDA tensors captured once as a CUDA graph and replayed: the whole sequence of
// kernels relaunches with one call, so small batches stop paying per-kernel launch costs.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include <ATen/ATen.h>

namespace ditgen {

// Whether this build can capture CUDA graphs (it was compiled with the CUDA toolkit).
bool cuda_graphs_available();

class CudaGraph {
 public:
  using Fn = std::function<std::vector<at::Tensor>(const std::vector<at::Tensor>& inputs)>;

  // Copies `example_inputs` into the graph's own input buffers, runs fn once on a side stream to warm up
  // (library handles, workspaces, plan caches), then captures it. fn must not synchronise with the host.
  // Throws Error(Runtime) in a build without CUDA.
  CudaGraph(const Fn& fn, const std::vector<at::Tensor>& example_inputs);
  ~CudaGraph();
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;

  // Copies `inputs` (same shapes as the examples, or broadcastable to them) into the input buffers on the
  // current stream and replays. The outputs live in the graph's memory and are overwritten by the next
  // replay: copy what must outlive it.
  const std::vector<at::Tensor>& replay(const std::vector<at::Tensor>& inputs);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace ditgen
