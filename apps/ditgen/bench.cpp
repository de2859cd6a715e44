// `ditgen bench`: time the forward pass and whole generations along the engine's paths (eager, fused,
// fast), with throughput, TFLOP/s, MFU and peak memory. docs/PERFORMANCE.md explains how to read them.
#include <cstdio>
#include <memory>
#include <string>

#include <c10/util/StringUtil.h>

#include "commands.h"
#include "shipped.h"
#include "ditgen/pipeline/benchmark.h"

namespace ditgen::cli {

namespace {

struct BenchCliOptions {
  BenchOptions bench;
  std::vector<std::string> schedules{"dense"};
  bool json = false;
};

void print_row(const BenchRecord& r) {
  std::string what = "mixing";
  if (r.kind == "forward") what = "forward/p" + std::to_string(r.patch) + (r.grid ? "/g" + std::to_string(r.grid) : "");
  if (r.kind == "sample")
    what = "sample x" + std::to_string(r.steps.value_or(0)) + (r.schedule == "dense" ? "" : " " + r.schedule);
  std::string note = r.attention;
  if (r.kind == "decode") {
    what = "vae " + (r.tile.value_or(0) ? "tile " + std::to_string(*r.tile) : std::string("whole"));
    note = c10::str("--vae-tile ", r.vae_tile, ", ", r.chunk.value_or(1), " at a time, ",
                    static_cast<int>(r.decode_share.value_or(0) * 1000 + 0.5) / 10.0, "% of the generation");
  }
  const std::string mfu = r.mfu ? c10::str(static_cast<int>(*r.mfu * 1000 + 0.5) / 10.0, "%") : "-";
  const std::string mem = r.peak_memory_gib ? c10::str(static_cast<int>(*r.peak_memory_gib * 100 + 0.5) / 100.0) : "-";
  std::printf("%-6s %-14s %5d %5dx%-5d %10.3f %10.1f %8.1f %7s %8s  %s\n", r.path.c_str(), what.c_str(), r.batch,
              r.height, r.width, r.ms, r.images_per_s, r.tflops, mfu.c_str(), mem.c_str(), note.c_str());
  for (const KernelTime& k : r.kernels)
    std::printf("         %9.3f ms %4lld x  %s\n", k.ms, static_cast<long long>(k.calls), k.name.substr(0, 100).c_str());
  std::fflush(stdout);
}

int run_bench(BenchCliOptions& o) {
  if (o.bench.model.empty()) o.bench.model = default_model_path();
  o.bench.schedules.clear();
  for (const std::string& s : o.schedules) o.bench.schedules.push_back(resolve_schedule(s));
  bool header = false;
  run_benchmark(o.bench, [&](const BenchRecord& r) {
    if (o.json) {
      std::printf("%s\n", to_json(r).dump().c_str());
      std::fflush(stdout);
      return;
    }
    if (!header) {
      std::printf("%s %s%s%s on %s\n", r.model.c_str(), r.dtype.c_str(), r.quantization.empty() ? "" : " ",
                  r.quantization.c_str(), r.device.c_str());
      const std::string mfu = c10::str("MFU/", kPeakTflopsBf16);  // the peak it divides by
      std::printf("%-6s %-14s %5s %11s %10s %10s %8s %7s %8s  %s\n", "path", "run", "batch", "size", "ms", "img/s",
                  "TFLOP/s", mfu.c_str(), "mem GiB", "attention, notes");
      header = true;
    }
    print_row(r);
  });
  return 0;
}

}  // namespace

Command add_bench_command(CLI::App& root) {
  auto o = std::make_shared<BenchCliOptions>();
  BenchOptions& b = o->bench;
  CLI::App* app = root.add_subcommand(
      "bench",
      c10::str("Time the model forward and whole generations: ms, images/s, TFLOP/s, MFU and peak memory, for each "
               "engine path. MFU divides by ", kPeakTflopsBf16, " TFLOP/s, the dense bf16 rate measured on the H100 "
               "here (its datasheet says 989). Paths: eager = the reference forward; fused = fused adaLN kernels and "
               "GELU GEMM epilogue; fast = fused + CUDA graphs (forward, and each sampler step). Times are medians of "
               "CUDA-event timings after warm-up."));
  app->add_option("-m,--model", b.model,
                  "Model file, YAML spec or registry name (e.g. DiT-XL/2, random weights); default: the shipped model");
  app->add_option("-b,--batch", b.batches, "Images per forward, comma-separated (e.g. 1,8,64)")
      ->delimiter(',')
      ->capture_default_str();
  app->add_option("--size", b.sizes,
                  "Square input sizes in latent pixels, comma-separated (DiT-XL/2: 32 = 256 px); default: the model's")
      ->delimiter(',');
  app->add_option("--frames", b.frames, "Clip lengths of a video model, comma-separated (e.g. 16,32,64); default: the model's")
      ->delimiter(',');
  app->add_option("--dtype", b.dtype, "auto (bf16 on CUDA, fp32 elsewhere), fp32, bf16 or fp16")->capture_default_str();
  app->add_option("--device", b.device, "auto, cpu, cuda or cuda:N")->capture_default_str();
  app->add_option("--path", b.paths, "Engine paths to time: eager, fused, fast (comma-separated); off CUDA only eager")
      ->delimiter(',')
      ->capture_default_str();
  app->add_option("--attention", b.attention, "SDPA backend to prefer: auto, flash, cudnn, efficient, math")
      ->capture_default_str();
  app->add_option("--warmup", b.warmup, "Untimed forwards before timing")->capture_default_str();
  app->add_option("--reps", b.reps, "Timed forwards (median reported)")->capture_default_str();
  app->add_option("--sample-batch", b.sample_batch, "Images per timed whole generation; 0 skips it")
      ->capture_default_str();
  app->add_option("--steps", b.steps, "Sampling steps of a whole generation")->capture_default_str();
  app->add_option("--sampler", b.sampler, "Sampler of a whole generation")->capture_default_str();
  app->add_option("--cfg-scale", b.cfg_scale, "Guidance scale of a whole generation (1 = no null branch)")
      ->capture_default_str();
  app->add_option("--patch", b.patches, "Patch sizes of the forward timings (flexible models), comma-separated")
      ->delimiter(',');
  app->add_option("--grid", b.grids, "Sparse grids S of the forward timings (sparse models), comma-separated")
      ->delimiter(',');
  app->add_option("--schedule", o->schedules,
                  "Compute schedules of the whole-generation timings (presets, YAML files or shorthand; separate "
                  "several with ';')")
      ->delimiter(';')
      ->capture_default_str();
  app->add_option("--sample-reps", b.sample_reps, "Timed whole generations (after one warm-up)")->capture_default_str();
  app->add_option("--seed", b.seed, "Seed of the random weights and inputs")->capture_default_str();
  app->add_option("--quantize", b.quantize,
                  "Quantize a float model in memory first: w8a8 or w4a8 (integer weights at 8 or 4 bits, int8 tokens: "
                  "the integer GEMMs; asymmetric), w8a8-sym (symmetric, a merged IntLoRA model's format) or fp8 (e4m3 "
                  "weights and tokens through cuBLASLt)");
  app->add_option("--lora-rank", b.lora_rank,
                  "With --quantize: float LoRA adapters of this rank beside every quantized layer, unmerged (what "
                  "QLoRA costs before its merge)");
  app->add_flag("--merge-lora", b.merge_lora, "Flexible LoRA models: merge the adapters into a weight copy per patch size");
  app->add_flag("--profile", b.profile, "Also profile one run per forward or --mixing measurement: the top CUDA kernels by time (on the CPU: LibTorch's ops by self time)");
  app->add_flag("--mixing", b.mixing,
                "Also time one block's token mixing per size and batch: the attention cores after the projections "
                "(dense: softmax(QK^T)V over all tokens; PT-DiT: proxies, proxy and cross attention, windows, "
                "shifted windows; DiffuSSM: the bidirectional SSM's FFT convolutions)");
  app->add_flag("--ssm-scan", b.ssm_scan,
                "SSM (DiffuSSM) models: mix tokens with the fused CUDA scan kernel instead of FFT convolutions on the "
                "fused and fast paths (on the H100 faster only at 64k tokens, with far less memory: docs/DIFFUSSM.md)");
  app->add_option("--vae", b.vae,
                  "Also time VAE decoding of each whole generation's images (latent models): a VAE file, or sd-vae for "
                  "the full-size SD-VAE with random weights; reports ms per batch, peak memory and decoding's share "
                  "of the generation");
  app->add_option("--vae-tile", b.vae_tiles, "VAE decodings to time: off (whole), auto, or tile sizes in latents")
      ->delimiter(',')
      ->capture_default_str();
  app->add_flag("--json", o->json, "One JSON record per line (the keys of scripts/bench/torch_reference.py)");
  return {app, [o] { return run_bench(*o); }};
}

}  // namespace ditgen::cli
