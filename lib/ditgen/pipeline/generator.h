// Generator: a loaded model on its device, turning requests into frames. The one entry point a library
// user needs for sampling; the CLI is a thin layer over it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "ditgen/core/device.h"
#include "ditgen/models/model_file.h"
#include "ditgen/pipeline/cuda_graph.h"
#include "ditgen/sampling/guidance.h"
#include "ditgen/sampling/sampler.h"
#include "ditgen/text/tokenizer.h"

namespace ditgen {

struct GenerationRequest {
  std::vector<int64_t> labels;       // class models: the class id of each image
  std::vector<std::string> prompts;  // text models: the prompt of each image (labels stays empty)
  std::string negative_prompt;       // text models: the guidance branch's prompt ("" = the null condition)
  std::vector<uint64_t> seeds;       // seed of each image (one per label or prompt)
  sampling::SamplerOptions sampler;
  sampling::Guidance guidance;
  schedule::ComputeSchedule schedule;  // patch size per step and branch (flexible models); dense by default
  // Model input size. 0 stands for the model's own (config input_size), so a caller taking sizes from users
  // passes only the sizes they gave: a given 0 is not a size. Negative sizes are refused.
  int height = 0;
  int width = 0;
  // Frames of a clip (video models): 0 = the model's own (input_frames; 1 for image models). A video model
  // also makes single images (frames 1).
  int frames = 0;
  // A size other than the one the model was trained at gives meaningless images; it is refused
  // (Error(Usage)) unless this is set, and then runs with a warning (benchmarks, experiments).
  bool allow_untrained_size = false;
  int batch_size = 0;            // images per forward; 0 = all at once
  bool auto_batch = false;       // out of GPU memory: halve the batch and go on (else Error(Runtime) naming one that fits)
  at::Tensor init_noise;         // optional [N, C, H, W] ([N, C, F, H, W] for clips): replaces the seeded noise
  bool keep_trajectory = false;  // keep the state after every step (images only)

  // Images asked for: one per label or prompt.
  size_t images() const { return labels.empty() ? prompts.size() : labels.size(); }
};

// A request checked against a model, with what its run needs built once: the size, the sampler, the guidance
// and each step's plan. Made by Generator::resolve.
struct ResolvedRequest {
  GenerationRequest request;
  int height = 0, width = 0;  // the size run (the model's own where the request says 0)
  int frames = 1;             // the frames run (the model's own where the request says 0)
  std::shared_ptr<const sampling::Sampler> sampler;
  sampling::Guidance guidance;            // the request's, with the schedule's weak-guidance scale filled in
  std::vector<schedule::StepPlan> plans;  // what each denoising step runs (patch sizes, sparse grid)
  at::Tensor conditions;    // CPU int64: [N] class ids, or [N, max_tokens] token ids of the prompts
  at::Tensor negative_ids;  // CPU int64 [max_tokens]: the negative prompt's ids (text models; undefined: none)
  std::vector<std::vector<std::string>> unknown_words;  // text models: each prompt's words the model ignores
  std::vector<std::string> negative_unknown_words;      // text models: the negative prompt's ignored words

  int steps() const { return static_cast<int>(plans.size()); }
  bool guided() const { return guidance.scale != 1.0; }
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

  // Checks a request against the model (sizes, labels or prompts, sampler, guidance, schedule, noise) without
  // running it and builds what the run needs (prompts become token ids; words the model does not know are
  // listed, not refused); throws Error(Usage) (Error(Input) for bad init_noise) with a clear message.
  // Resolve once and pass the result on: the overloads taking a GenerationRequest resolve it again.
  ResolvedRequest resolve(const GenerationRequest& request) const;
  void validate(const GenerationRequest& request) const { resolve(request); }

  // Runs a request this generator resolved (or resolves it first). `on_progress` is called after every step;
  // `cancelled` is polled before every step. Out of device memory, the batch in flight is dropped and, with
  // request.auto_batch, rerun at half the size (later batches and calls keep the smaller size; every image is
  // still its seed's); without it, Error(Runtime) names the largest halved batch whose costliest sampling step
  // fits. A size the model was not trained at (allowed by the request) logs a warning, once per size.
  GenerationResult generate(const ResolvedRequest& request,
                            const std::function<void(const Progress&)>& on_progress = {},
                            const std::function<bool()>& cancelled = {});
  GenerationResult generate(const GenerationRequest& request,
                            const std::function<void(const Progress&)>& on_progress = {},
                            const std::function<bool()>& cancelled = {}) {
    return generate(resolve(request), on_progress, cancelled);
  }

  // MAC GFLOPs of each denoising step of one image (all model evaluations, the guidance branch included).
  std::vector<double> step_gflops(const ResolvedRequest& request) const;
  // From the request's size, sampler, guidance and schedule alone (no labels needed).
  std::vector<double> step_gflops(const GenerationRequest& request) const;
  // Their sum.
  double gflops_per_image(const ResolvedRequest& request) const;
  double gflops_per_image(const GenerationRequest& request) const;

  // A lora-mode flexible model's adapters: merged into one weight copy per patch size (no extra FLOPs,
  // more memory) or applied unmerged (the default).
  void set_lora_merged(bool merged);

  // On CUDA, each sampler step (guided forward and update) is captured once per batch shape, guidance and
  // sampler kind, and replayed for every step and batch (default on; off = eager launches).
  void set_cuda_graphs(bool enabled) { cuda_graphs_ = enabled; }
  bool uses_cuda_graphs() const { return cuda_graphs_ && cuda_graphs_available() && device_.is_cuda() && !exchange_; }
  // CFG-parallel generation (dist/cfg_parallel.h): guided steps run this process's branch and take the other
  // from its partner (without CUDA graphs). nullptr: both branches here.
  void set_branch_exchange(std::shared_ptr<sampling::BranchExchange> exchange) { exchange_ = std::move(exchange); }
  // Frees the captured graphs and their memory.
  void clear_graphs() { graphs_.clear(); }

 private:
  // The captured step for a batch, capturing it on first use.
  CudaGraph& step_graph(const ResolvedRequest& request, const at::Tensor& x, const at::Tensor& y,
                        const at::Tensor& null_y, const at::Tensor& scalars, const schedule::StepPlan& plan);
  // After running out of memory at `failed` images: the largest of failed/2, failed/4, ... whose costliest
  // step runs (one eager guided forward); 0 when not even one image does.
  int fitting_batch(const ResolvedRequest& request, int failed);
  // Drops the captured graphs and returns cached device memory to the driver.
  void release_memory();

  LoadedModel model_;
  std::optional<text::Tokenizer> tokenizer_;  // text models
  at::Device device_;
  at::ScalarType dtype_;
  bool cuda_graphs_ = true;
  std::shared_ptr<sampling::BranchExchange> exchange_;
  std::map<std::string, std::unique_ptr<CudaGraph>> graphs_;
  int auto_batch_limit_ = 0;  // the batch --auto-batch settled on (0: none yet)
  std::set<std::pair<int, int>> untrained_sizes_run_;  // warned about once each
  std::set<int> untrained_frames_run_;                 // likewise
};

// The size a run makes for a requested height and width (0 = the model's own): Error(Usage) unless both are
// positive multiples of the patch size, at most 8192.
std::pair<int, int> run_size(const DiTConfig& config, int height, int width);
// The frames a request runs (0 = the model's own): Error(Usage) for clips from an image model or a count the
// model's windows do not divide.
int run_frames(const DiTConfig& config, int frames);
// One sample's shape: [C, H, W] for an image, [C, F, H, W] for a clip.
std::vector<int64_t> sample_shape(int64_t channels, int frames, int height, int width);
// A batch of them: [B, C, H, W] or [B, C, F, H, W].
std::vector<int64_t> batch_shape(int64_t batch, int64_t channels, int frames, int height, int width);

// Error(Input) unless `noise` is a 4-D [N, C, H, W] (or clips' 5-D [N, C, F, H, W]) tensor of finite values:
// initial noise from a file is checked before anything indexes it.
void check_init_noise(const at::Tensor& noise);

}  // namespace ditgen
