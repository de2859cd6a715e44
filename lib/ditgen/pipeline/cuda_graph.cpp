#include "ditgen/pipeline/cuda_graph.h"

#include "ditgen/core/error.h"

#ifdef DITGEN_HAVE_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace ditgen {

#ifdef DITGEN_HAVE_CUDA

bool cuda_graphs_available() { return true; }

struct CudaGraph::State {
  at::cuda::CUDAGraph graph;
  std::vector<at::Tensor> inputs, outputs;
};

CudaGraph::CudaGraph(const Fn& fn, const std::vector<at::Tensor>& example_inputs) : state_(std::make_unique<State>()) {
  TORCH_CHECK(!example_inputs.empty() && example_inputs.front().is_cuda(), "CudaGraph needs CUDA inputs");
  const c10::DeviceIndex device = example_inputs.front().device().index();
  c10::cuda::CUDAGuard device_guard(device);
  for (const at::Tensor& e : example_inputs) state_->inputs.push_back(at::empty(e.sizes(), e.options()).copy_(e));
  // Capture needs a stream other than the default one; it starts after the input copies.
  c10::cuda::CUDAStream current = c10::cuda::getCurrentCUDAStream(device);
  c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool(false, device);
  at::cuda::CUDAEvent inputs_ready;
  inputs_ready.record(current);
  inputs_ready.block(side);
  {
    c10::cuda::CUDAStreamGuard stream_guard(side);
    fn(state_->inputs);
    side.synchronize();
    state_->graph.capture_begin();
    try {
      state_->outputs = fn(state_->inputs);
    } catch (...) {
      // Out of memory while capturing: end the capture so the stream and the allocator leave capture mode
      // (the partial graph is dropped with this object), then let the caller see the error.
      try {
        state_->graph.capture_end();
      } catch (...) {
      }
      throw;
    }
    state_->graph.capture_end();
  }
  at::cuda::CUDAEvent captured;
  captured.record(side);
  captured.block(current);
}

const std::vector<at::Tensor>& CudaGraph::replay(const std::vector<at::Tensor>& inputs) {
  TORCH_CHECK(inputs.size() == state_->inputs.size(), "CudaGraph::replay: expected ", state_->inputs.size(),
              " inputs, got ", inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) state_->inputs[i].copy_(inputs[i], /*non_blocking=*/true);
  state_->graph.replay();
  return state_->outputs;
}

#else

bool cuda_graphs_available() { return false; }

struct CudaGraph::State {};

CudaGraph::CudaGraph(const Fn&, const std::vector<at::Tensor>&) {
  throw Error(ErrorKind::Runtime, "this ditgen was built without the CUDA toolkit: no CUDA graphs");
}

const std::vector<at::Tensor>& CudaGraph::replay(const std::vector<at::Tensor>&) {
  throw Error(ErrorKind::Runtime, "this ditgen was built without the CUDA toolkit: no CUDA graphs");
}

#endif

CudaGraph::~CudaGraph() = default;

}  // namespace ditgen
