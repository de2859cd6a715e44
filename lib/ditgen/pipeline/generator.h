// Generator: a loaded model on its device, turning requests into frames. The one entry point a library
// user needs for sampling; the CLI is a thin layer over it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "ditgen/models/model_file.h"
#include "ditgen/pipeline/cuda_graph.h"
#include "ditgen/sampling/guidance.h"
#include "ditgen/sampling/sampler.h"

namespace ditgen {

struct GenerationRequest {
  std::vector<int64_t> labels;   // class id of each image
  std::vector<uint64_t> seeds;   // seed of each image (same length as labels)
  sampling::SamplerOptions sampler;
  sampling::Guidance guidance;
  schedule::ComputeSchedule schedule;  // patch size per step and branch (flexible models); dense by default
  int height = 0;                // model input size; 0 = the model's own
  int width = 0;
  int batch_size = 0;            // images per forward; 0 = all at once
  bool auto_batch = false;       // out of GPU memory: halve the batch and go on (else Error(Runtime) naming one that fits)
  at::Tensor init_noise;         // optional [N, C, H, W]: replaces the seeded initial noise
  bool keep_trajectory = false;  // keep the state after every step
};

struct Progress {
  int images_done = 0;
  int images_total = 0;
  int step = 0;        // within the current batch, 1-based
  int steps = 0;
  double elapsed_s = 0;
};

struct GenerationResult {
  at::Tensor frames;      // [N, F, C, H, W] float32 CPU in the model's output space (F = 1 for images)
  at::Tensor trajectory;  // [T + 1, N, C, H, W] when requested: the noise, then the state after each step
  bool cancelled = false;
};

class Generator {
 public:
  // Loads a model file onto `device` in `dtype` (Error(Model) on a bad file).
  Generator(const std::filesystem::path& model_path, at::Device device, at::ScalarType dtype);
  // Wraps a model already in memory (tests, training previews).
  Generator(LoadedModel model, at::Device device, at::ScalarType dtype);

  const ModelInfo& info() const { return model_.info; }
  at::Device device() const { return device_; }
  at::ScalarType dtype() const { return dtype_; }

  // Checks a request against the model (sizes, labels, sampler, guidance, noise shape) without running it;
  // throws Error(Usage) (or Error(Input) for a mismatched init_noise) with a clear message.
  void validate(const GenerationRequest& request) const;

  // Runs the request. `on_progress` is called after every step; `cancelled` is polled before every step.
  // Out of device memory, the batch in flight is dropped and, with request.auto_batch, rerun at half the
  // size (later batches and calls keep the smaller size; every image is still its seed's); without it,
  // Error(Runtime) names the largest halved batch whose costliest sampling step fits.
  GenerationResult generate(const GenerationRequest& request,
                            const std::function<void(const Progress&)>& on_progress = {},
                            const std::function<bool()>& cancelled = {});

  // MAC GFLOPs per image for a request (all model evaluations, the guidance branch included).
  double gflops_per_image(const GenerationRequest& request) const;
  // The same per denoising step.
  std::vector<double> step_gflops(const GenerationRequest& request) const;

  // A lora-mode flexible model's adapters: merged into one weight copy per patch size (no extra FLOPs,
  // more memory) or applied unmerged (the default).
  void set_lora_merged(bool merged);

  // On CUDA, each sampler step (guided forward and update) is captured once per batch shape, guidance and
  // sampler kind, and replayed for every step and batch (default on; off = eager launches).
  void set_cuda_graphs(bool enabled) { cuda_graphs_ = enabled; }
  bool uses_cuda_graphs() const { return cuda_graphs_ && cuda_graphs_available() && device_.is_cuda(); }
  // Frees the captured graphs and their memory.
  void clear_graphs() { graphs_.clear(); }

 private:
  std::pair<int, int> size_of(const GenerationRequest& request) const;
  // The captured step for a batch, capturing it on first use.
  CudaGraph& step_graph(const GenerationRequest& request, const sampling::Sampler& sampler, const at::Tensor& x,
                        const at::Tensor& y, const at::Tensor& scalars, const schedule::StepPlan& plan);
  // The request's guidance with the schedule's weak-guidance scale filled in.
  sampling::Guidance guidance_of(const GenerationRequest& request) const;
  // After running out of memory at `failed` images: the largest of failed/2, failed/4, ... whose costliest
  // step runs (one eager guided forward); 0 when not even one image does.
  int fitting_batch(const GenerationRequest& request, int failed);
  // Drops the captured graphs and returns cached device memory to the driver.
  void release_memory();

  LoadedModel model_;
  at::Device device_;
  at::ScalarType dtype_;
  bool cuda_graphs_ = true;
  std::map<std::string, std::unique_ptr<CudaGraph>> graphs_;
  int auto_batch_limit_ = 0;  // the batch --auto-batch settled on (0: none yet)
};

// Parses "auto", "cpu", "cuda", "cuda:N"; auto picks CUDA when available. Throws Error(Usage).
at::Device parse_device(const std::string& text);
// Parses "fp32", "bf16", "fp16" (and "float32", "bfloat16", "float16"). Throws Error(Usage).
at::ScalarType parse_dtype(const std::string& text);
std::string dtype_label(at::ScalarType dtype);

}  // namespace ditgen
