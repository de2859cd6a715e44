// `ditgen bench` as a library call: times the model forward and whole generations along the engine's
// paths, with the metrics docs/PERFORMANCE.md reports (the PyTorch reference, scripts/bench/
// torch_reference.py, prints the same records).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "ditgen/models/config.h"

#include "ditgen/core/profile.h"
#include "ditgen/schedule/compute_schedule.h"

namespace ditgen {

// The engine paths a benchmark can time.
//   eager: the reference forward (block by block), no CUDA graphs;
//   fused: fused adaLN kernels, SiLU once, GELU in the GEMM epilogue; no CUDA graphs;
//   fast:  fused, with the forward (and in generation each sampler step) captured as a CUDA graph.
std::vector<std::string> bench_path_names();

struct BenchOptions {
  std::string model;                 // model file, YAML spec or registry name (random N(0, 0.02) weights)
  std::vector<int> batches{64};      // images per forward
  std::vector<int> sizes;            // square input sizes (latent pixels); empty = the model's own
  std::vector<int> frames;           // clip lengths (video models); empty = the model's own (1 for images)
  std::vector<int> patches;          // patch sizes of the forward measurements (flexible models); empty = own
  std::vector<int> grids;            // sparse grids of the forward measurements (sparse models); empty = default
  std::string dtype = "auto";        // auto: bf16 on CUDA, fp32 elsewhere (resolve_dtype)
  std::string device = "auto";
  std::vector<std::string> paths{"eager", "fused", "fast"};
  std::string attention = "auto";    // SDPA backend preferred: auto, flash, cudnn, efficient, math
  int warmup = 5;                    // untimed forwards before each measurement
  int reps = 20;                     // timed forwards; the median is reported
  int sample_batch = 8;              // images per whole-generation run; 0 = skip generation timing
  int steps = 50;
  std::string sampler = "ddim";
  double cfg_scale = 4.0;
  std::vector<schedule::ComputeSchedule> schedules{schedule::ComputeSchedule()};  // one generation timing each
  int sample_reps = 3;               // timed generations after one warm-up run
  uint64_t seed = 0;
  bool merge_lora = false;           // lora-mode flexible models: merged weight copy per patch size
  bool profile = false;              // also profile one run per forward or mixing measurement (CUDA kernels, top 12)
  bool mixing = false;               // also time one block's token mixing per size and batch (see below)
  bool ssm_scan = false;             // SSM models: the fused scan kernel instead of FFT convolutions (CUDA)
  // Quantize a float model in memory before timing (docs/QUANT.md): w8a8 or w4a8 (int8 weights at 8 or 4
  // bits, asymmetric, dynamic int8 tokens: the integer path), w8a8-sym (symmetric: a merged IntLoRA model's
  // format), fp8 (e4m3 weights and tokens); "" = as loaded.
  std::string quantize;
  // With quantize: float LoRA adapters of this rank beside every quantized layer, unmerged (what QLoRA costs
  // before its merge); 0 = none.
  int lora_rank = 0;
  // Also time VAE decoding of each whole generation's latents (latent models): a VAE file, or "sd-vae" for the
  // full-size SD-VAE with random weights; "" = none. One record per --vae-tile setting (auto, off or a tile).
  std::string vae;
  std::vector<std::string> vae_tiles{"off", "auto"};
};

// Token mixing: the attention cores of one block after the projections (what PT-DiT's complexity formula
// counts): for a dense block softmax(QK^T)V over all N tokens; for a proxy-token block the proxy means,
// proxy self-attention, every token's attention to the proxies, window attention, and the shifted windows'
// gathers and masked attention; for a DiffuSSM block, which has no attention, its bidirectional SSM (two FFT
// convolutions a channel, kernel spectra cached). Runs them once on random inputs of a block's shapes.
// [record kind "mixing"]
std::function<void()> token_mixing_run(const DiTConfig& config, int batch, int size, int frames,
                                       const at::TensorOptions& options);
// MAC GFLOPs of those cores for one image (or clip of `frames`).
double token_mixing_gflops(const DiTConfig& config, int size, int frames = 1);

// The peak MFU divides by, in TFLOP/s: the dense bf16 rate measured on the H100 (SXM) this project runs on,
// not the datasheet's 989. Every record carries it (mfu_peak_tflops).
constexpr double kPeakTflopsBf16 = 800.0;

// One measurement. Matches the JSON records of scripts/bench/torch_reference.py.
struct BenchRecord {
  std::string kind;       // forward | sample | mixing | decode
  std::string path;       // eager | fused | fast
  std::string model;
  int64_t params = 0;
  int height = 0, width = 0;
  int frames = 1;         // a clip's frames (1 for images); "images" below then count clips
  int patch = 0;          // forward: the patch size run
  int grid = 0;           // forward: a sparse model's grid S (0 for dense models)
  int64_t tokens = 0;
  int batch = 0;          // images (a guided sample runs 2x per forward)
  std::string schedule;   // sample: the compute schedule
  std::string dtype, device, attention;
  std::string ssm;        // SSM models: how the fused paths mix tokens on CUDA, fft or scan ("" otherwise)
  std::string quantization;  // a quantized model's label (W8A8, W4A8, FP8, ...); "" for a float model
  double gflops_per_image = 0;  // MAC GFLOPs of one forward of one image
  std::optional<double> gflops_per_generation;  // sample: MAC GFLOPs of one image's whole generation
  double ms = 0, ms_min = 0;    // median and fastest: per forward, or per whole generation
  double images_per_s = 0;
  double tflops = 0;            // achieved, 2 FLOPs per MAC
  std::optional<double> mfu;    // tflops / kPeakTflopsBf16; CUDA half types only
  std::optional<double> peak_memory_gib;
  std::optional<int> steps;
  std::optional<double> cfg_scale;
  std::vector<KernelTime> kernels;  // with profile: one run's CUDA kernels by total time
  // decode: the VAE, its --vae-tile setting and the plan run (tile 0 = whole images; images decoded together),
  // the memory decoding added over what was allocated before (CUDA), and decoding's share of a whole
  // generation: decode ms / (sample ms + decode ms) for the same batch.
  std::string vae, vae_tile;
  std::optional<int> tile;
  std::optional<int64_t> chunk;
  std::optional<double> decode_memory_gib;
  std::optional<double> decode_share;
};

nlohmann::json to_json(const BenchRecord& record);

// Runs every (path, size, patch, grid, batch) forward measurement, then per path, size and schedule one
// whole-generation measurement; calls on_record as each completes. Error(Usage) for bad options, Error(Model) for a bad file.
void run_benchmark(const BenchOptions& options, const std::function<void(const BenchRecord&)>& on_record);

}  // namespace ditgen
