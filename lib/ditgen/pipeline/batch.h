// Batch runs: many prompts (a prompt file, or the command line's), one model load. Compatible images share
// forward passes; each image is written as soon as its batch finishes; a run can stop between batches and
// resume later without redoing finished images; a manifest records every output.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "ditgen/io/prompt_file.h"
#include "ditgen/pipeline/generator.h"

namespace ditgen {

// The most images one run plans (each costs a few KB of bookkeeping before anything is generated).
constexpr int64_t kMaxImagesPerRun = 100000;

// What an entry does not say. Seeds: the run's image i (counting every image of every entry in order)
// uses seed + i; an entry with its own seed uses that seed + j for its image j.
struct BatchSettings {
  uint64_t seed = 0;
  sampling::SamplerOptions sampler;
  sampling::Guidance guidance;
  schedule::ComputeSchedule schedule;   // for entries without their own
  // Turns an entry's "schedule" text into a schedule (the CLI adds presets); unset: the shorthand only.
  std::function<schedule::ComputeSchedule(const std::string&)> resolve_schedule;
  std::optional<std::string> negative;  // negative prompt for entries without one
  int width = 0, height = 0;            // 0: the model's
  int frames = 0;                       // clips' frames (video models); 0: the model's
  int fps = 8;                          // clips' frame rate, recorded and written into their containers
  std::string video_format;             // clips: an explicit container (mp4, webm, gif, png); "": by name
  bool allow_untrained_size = false;    // run at sizes the model was not trained for (else refused)
  int num_images = 1;                   // per entry without "n"
  int batch_size = 16;                  // images per generate call
  bool auto_batch = false;              // out of GPU memory: halve the batch and go on
  std::string output_template;          // empty: no image files (latent models without a VAE)
  // Latent models with a VAE: latent frames [B, C, h, w] -> images [B, C', h s, w s] in [-1, 1], float32 on the
  // CPU, before anything is written (kept frames stay latents); unset: frames are written as they come.
  std::function<at::Tensor(const at::Tensor&)> decode;
  nlohmann::json vae_record;            // with decode: the VAE as every output's record names it ("vae")
  bool resume = false;                  // skip outputs that exist with a matching record
  bool strict = false;                  // an unusable prompt is an Error(Usage) rather than a failed item
  at::Tensor init_noise;                // optional [N, C, H, W]: image i starts from noise[i]
  bool keep_frames = false;             // keep every frame (for a latents file or a grid)
  bool keep_trajectory = false;
  // Data-parallel runs (docs/DISTRIBUTED.md): the run's batches, formed as one process forms them, go round
  // robin to `shards` processes and this one makes those of `shard`, so every image comes out of the same
  // batch, and so the same bytes, whatever the number of processes.
  int shard = 0, shards = 1;
  // CFG-parallel's second process of a pair (dist/cfg_parallel.h): it makes its shard's batches beside the
  // pair's first process, computing the guidance branch, and writes, reports and decodes nothing.
  bool partner = false;
};

enum class ItemStatus { Pending, Ok, Skipped, Failed, Cancelled };
const char* status_name(ItemStatus status);

// One output image or clip.
struct BatchItem {
  int entry = 0;                // index of its prompt entry
  int line = 0;                 // source line of the entry
  int index = 0;                // image index in the run
  std::string prompt;           // the class label it resolved to (or the text, when it failed)
  std::string negative;         // resolved negative label, "" = null condition
  GenerationRequest request;    // this image alone (labels/seeds of size 1)
  std::filesystem::path path;   // empty when the run writes no images
  ItemStatus status = ItemStatus::Pending;
  std::string error;
  double seconds = 0;           // its share of its batch's time
  double gflops = 0;
  nlohmann::json record;        // what its PNG (or clip) carries
  bool clip = false;            // a clip of record["frames"] frames, written by io::write_video
  int shard = 0;                // the process of a data-parallel run that makes it
};

struct BatchSummary {
  int ok = 0, skipped = 0, failed = 0, cancelled = 0;
  double seconds = 0;
  std::string runtime_error;  // the machine failed (out of memory, device fault): the run stopped there
};

class BatchRun {
 public:
  // Resolves prompts, seeds, sizes and names. Error(Usage) when two outputs would get the same name, or
  // (strict) for the first unusable prompt; otherwise unusable entries become failed items.
  BatchRun(Generator& generator, const std::vector<io::PromptEntry>& entries, const BatchSettings& settings,
           const std::string& device_label);

  const std::vector<BatchItem>& items() const { return items_; }

  // Runs every pending item. `stop` is checked between batches (pending items become cancelled; so do all
  // after a batch the machine failed, see BatchSummary::runtime_error),
  // `abandon` between denoising steps (the batch in flight is dropped). `on_item` sees each finished item.
  BatchSummary run(const std::function<bool()>& stop, const std::function<bool()>& abandon,
                   const std::function<void(const BatchItem&)>& on_item,
                   const std::function<void(const Progress&)>& on_progress);

  // This process's items once run, for the process that writes the manifest: [{"index", "status", "error",
  // "seconds", "gflops", "record"}]; none from a CFG-parallel partner (its pair's first process reports them).
  nlohmann::json shard_states() const;
  // Takes over items another process made (its shard_states()); Error(Runtime) for an index outside the run.
  void adopt(const nlohmann::json& states);
  // The counts over every item (after adopt: the whole data-parallel run's).
  BatchSummary summary() const;

  // The frames [N, 1, C, H, W] (keep_frames) and trajectory [T + 1, N, C, H, W] (keep_trajectory) in item
  // order, once every item is done.
  at::Tensor frames() const;
  at::Tensor trajectory() const;
  // The frame [C, H, W] of item `index` (keep_frames, after it finished).
  at::Tensor frame(int index) const { return frames_.at(index).select(0, 0); }
  // The frames [F, C, H, W] of clip `index` (keep_frames, after it finished).
  at::Tensor clip(int index) const { return frames_.at(index); }

  // One JSON line per output (path, prompt, line, index, status, run_seed; for usable lines also seed,
  // parameters, seconds, GFLOPs; error), written atomically. While a run is in progress the lines of images not
  // made yet say "pending".
  void write_manifest(const std::filesystem::path& path) const;

 private:
  // The counts over the items of `shard` (all items: nullopt); pending items count as cancelled.
  BatchSummary tally(std::optional<int> shard) const;
  void run_group(const std::vector<size_t>& members, const std::function<bool()>& abandon,
                 const std::function<void(const BatchItem&)>& on_item,
                 const std::function<void(const Progress&)>& on_progress);

  Generator& generator_;
  BatchSettings settings_;
  std::vector<BatchItem> items_;
  std::vector<at::Tensor> frames_, trajectories_;  // per item when kept
  std::string runtime_error_;
};

// The run seed (BatchSettings::seed) a manifest records, so that --resume finishes a run started without
// a seed; nullopt when the file is missing or records none. Reads at most the first line (1 MiB).
std::optional<uint64_t> recorded_run_seed(const std::filesystem::path& manifest);

}  // namespace ditgen
