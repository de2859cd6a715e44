#include "ditgen/pipeline/benchmark.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>

#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>

#include "ditgen/core/device.h"
#include "ditgen/core/error.h"
#include "ditgen/core/log.h"
#include "ditgen/cuda/dispatch.h"
#include "ditgen/models/cost.h"
#include "ditgen/models/dit.h"
#include "ditgen/nn/attention.h"
#include "ditgen/nn/proxy_attention.h"
#include "ditgen/nn/s4d.h"
#include "ditgen/pipeline/cuda_graph.h"
#include "ditgen/pipeline/generator.h"
#include "ditgen/quant/quantize_model.h"
#include "ditgen/text/tokenizer.h"
#include "ditgen/vae/tiled_decode.h"
#include "ditgen/vae/vae_file.h"

namespace ditgen {

namespace {

// Random class ids [B], or for a text model token ids of full-length prompts [B, L] (every token real: the
// costliest prompt).
at::Tensor random_conditions(const DiTConfig& c, int64_t batch, at::Generator& rng) {
  if (!c.text.enabled()) return at::randint(0, c.num_classes, {batch}, rng, at::kLong);
  at::Tensor ids = at::randint(text::kFirstWordId, c.text.vocab_size(), {batch, c.text.max_tokens}, rng, at::kLong);
  ids.select(1, 0).fill_(text::kStartId);
  return ids;
}

// A prompt of as many words as a text model reads (its vocabulary's, cycled).
std::string longest_prompt(const DiTConfig& c) {
  std::string prompt;
  for (int i = 0; i + 1 < c.text.max_tokens; ++i)
    prompt += (i ? " " : "") + c.text.vocabulary[static_cast<size_t>(i) % c.text.vocabulary.size()];
  return prompt;
}

// Restores a process-wide switch (fused kernels, the SSM scan kernel) when a benchmark ends, however it ends.
struct SwitchRestore {
  bool (*get)();
  void (*set)(bool);
  bool saved = get();
  ~SwitchRestore() { set(saved); }
};

LoadedModel bench_model(const std::string& name, uint64_t seed) {
  const std::filesystem::path path(name);
  if (path.extension() == ".safetensors") return load_model(path, at::Device(at::kCPU), at::kFloat);
  LoadedModel m;
  m.info = model_spec(name);
  m.model = DiT(m.info.config);
  m.model->normal_weights(0.02, seed);
  return m;
}

// --quantize: the float model quantized on the device (the clip search is quick there), in float32.
void quantize_for_bench(LoadedModel& m, const BenchOptions& o, const at::Device& device) {
  if (m.info.quantization.quantized())
    throw Error(ErrorKind::Usage, "--quantize needs a float model; this one is " + m.info.quantization.label());
  m.model->to(device, at::kFloat);
  if (o.quantize == "fp8")
    m.info.quantization = quant::quantize_model_fp8(m.model);
  else
    m.info.quantization = quant::quantize_model(
        m.model, o.quantize == "w4a8" ? 4 : 8,
        o.quantize == "w8a8-sym" ? quant::Symmetry::Symmetric : quant::Symmetry::Asymmetric,
        quant::ActivationMode::DynamicPerToken);
  if (o.lora_rank > 0) {
    uint64_t seed = o.seed;
    for (auto& [name, linear] : quant::quantizable_layers(m.model)) linear->add_lora(o.lora_rank, o.lora_rank, seed++);
  }
}

// The VAE a benchmark decodes with, on the device: a VAE file, or "sd-vae", the SD-VAE's shape with LibTorch's
// random initialisation (timings do not depend on the values).
vae::AutoencoderKL bench_vae(const std::string& name, const DiTConfig& c, at::Device device, at::ScalarType dtype) {
  vae::AutoencoderKL model{nullptr};
  if (name == "sd-vae") {
    model = vae::AutoencoderKL(vae::VaeConfig{});
    model->to(device, dtype);
    model->eval();
  } else {
    model = vae::load_vae(name, device, dtype).model;
  }
  if (model->config().latent_channels != c.in_channels)
    throw Error(ErrorKind::Usage, c10::str("--vae ", name, " decodes ", model->config().latent_channels,
                                           "-channel latents but the model makes ", c.in_channels));
  return model;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void validate(const BenchOptions& o, const DiTConfig& c) {
  auto fail = [](const std::string& m) { throw Error(ErrorKind::Usage, m); };
  if (o.batches.empty()) fail("give at least one batch size");
  if (!o.quantize.empty() && o.quantize != "w8a8" && o.quantize != "w4a8" && o.quantize != "w8a8-sym" &&
      o.quantize != "fp8")
    fail("--quantize takes w8a8, w4a8, w8a8-sym or fp8, not " + o.quantize);
  if (o.lora_rank < 0 || (o.lora_rank > 0 && (o.quantize.empty() || o.quantize == "fp8")))
    fail("--lora-rank needs --quantize w8a8, w4a8 or w8a8-sym and a rank >= 1");
  for (int b : o.batches)
    if (b < 1 || b > 4096) fail("batch sizes must be in 1..4096, got " + std::to_string(b));
  for (int s : o.sizes)
    if (s < c.patch_size || s > 1024 || s % c.patch_size)
      fail("size " + std::to_string(s) + " must be a multiple of the patch size " + std::to_string(c.patch_size) +
           " in " + std::to_string(c.patch_size) + "..1024");
  const auto names = bench_path_names();
  if (o.paths.empty()) fail("give at least one path");
  for (const auto& p : o.paths)
    if (std::find(names.begin(), names.end(), p) == names.end())
      fail("unknown path '" + p + "' (use eager, fused or fast)");
  if (o.warmup < 0 || o.warmup > 1000) fail("warmup must be in 0..1000");
  if (o.reps < 1 || o.reps > 10000) fail("reps must be in 1..10000");
  if (o.sample_batch < 0 || o.sample_batch > 4096) fail("sample batch must be in 0..4096");
  if (o.sample_reps < 1 || o.sample_reps > 1000) fail("sample reps must be in 1..1000");
  for (int p : o.patches)
    if (!c.supports_patch(p)) fail("the model does not run patch size " + std::to_string(p));
  if (!o.grids.empty() && !c.sparse.sparse()) fail("--grid needs a sparse model");
  for (int g : o.grids)
    for (int s : o.sizes.empty() ? std::vector<int>{c.input_height} : o.sizes)
      if (g < 1 || g > s / c.patch_size)
        fail("sparse grid " + std::to_string(g) + " does not fit the token grid of size " + std::to_string(s));
  for (int s : o.sizes)
    for (int p : o.patches)
      if (s % p) fail("patch size " + std::to_string(p) + " does not divide size " + std::to_string(s));
  for (int f : o.frames) c.check_frames(f);
  if (!o.frames.empty() && *std::max_element(o.frames.begin(), o.frames.end()) > 1 && !c.video())
    fail("--frames needs a video model");
  if (!o.vae.empty() && o.sample_batch == 0) fail("--vae times the decoding of whole generations: give --sample-batch");
  for (const std::string& tile : o.vae_tiles) vae::parse_tile_choice(tile);
  if (o.sample_batch == 0) return;
  sampling::make_sampler({o.sampler, o.steps}, c);  // the generation's sampler and guidance, before the forwards
  sampling::validate_guidance({o.cfg_scale}, c);
  for (const auto& schedule : o.schedules)
    for (int s : o.sizes.empty() ? std::vector<int>{c.input_height} : o.sizes) schedule.validate(c, s, s, o.steps);
}

struct Timing {
  double median_ms = 0, min_ms = 0;
};

Timing time_runs(const std::function<void()>& run, c10::Device device, int warmup, int reps) {
  for (int i = 0; i < warmup; ++i) run();
  synchronize(device);
  DeviceTimer timer(device);
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    timer.start();
    run();
    ms.push_back(timer.stop_ms());
  }
  return {median(ms), *std::min_element(ms.begin(), ms.end())};
}

}  // namespace

std::vector<std::string> bench_path_names() { return {"eager", "fused", "fast"}; }

nlohmann::json to_json(const BenchRecord& r) {
  auto opt = [](const auto& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); };
  nlohmann::json j = {{"tool", "ditgen"},       {"path", r.path},
          {"kind", r.kind},         {"model", r.model},
          {"params", r.params},     {"height", r.height},
          {"width", r.width},       {"frames", r.frames},      {"tokens", r.tokens},
          {"patch", r.patch},       {"grid", r.grid},            {"schedule", r.schedule},
          {"batch", r.batch},       {"dtype", r.dtype},
          {"device", r.device},     {"attention", r.attention},
          {"gflops_per_image", r.gflops_per_image},
          {"ms", r.ms},             {"ms_min", r.ms_min},
          {"images_per_s", r.images_per_s},
          {"tflops", r.tflops},     {"mfu", opt(r.mfu)},     {"mfu_peak_tflops", kPeakTflopsBf16},
          {"peak_memory_gib", opt(r.peak_memory_gib)},
          {"steps", opt(r.steps)},  {"cfg_scale", opt(r.cfg_scale)},
          {"gflops_per_generation", opt(r.gflops_per_generation)}};
  if (!r.ssm.empty()) j["ssm"] = r.ssm;
  if (!r.quantization.empty()) j["quantization"] = r.quantization;
  if (r.kind == "decode")
    j.update({{"vae", r.vae}, {"vae_tile", r.vae_tile}, {"tile", opt(r.tile)}, {"chunk", opt(r.chunk)},
              {"ms_per_image", r.ms / r.batch}, {"decode_memory_gib", opt(r.decode_memory_gib)},
              {"decode_share", opt(r.decode_share)}});
  if (!r.kernels.empty()) {
    j["kernels"] = nlohmann::json::array();
    for (const KernelTime& k : r.kernels) j["kernels"].push_back({{"name", k.name}, {"ms", k.ms}, {"calls", k.calls}});
  }
  return j;
}

double token_mixing_gflops(const DiTConfig& c, int size, int frames) {
  const double N = frames * std::pow(size / c.patch_size, 2), D = c.hidden_size;
  if (c.ssm.ssm()) return ssm_mixing_gflops(c, N);
  if (!c.proxy.proxy()) return 2 * N * N * D / 1e9;
  const nn::WindowGrid g = proxy_window_grid(c, frames, size / c.patch_size, size / c.patch_size);
  const double M = g.windows() * std::pow(c.proxy.proxy_split, 2), n = g.window_tokens();
  return (2 * M * M * D + 2 * N * M * D + 2 * 2 * N * n * D) / 1e9;
}

std::function<void()> token_mixing_run(const DiTConfig& c, int batch, int size, int frames,
                                       const at::TensorOptions& options) {
  const int64_t B = batch, H = c.num_heads, D = c.hidden_size, hd = D / H,
                N = frames * static_cast<int64_t>(std::pow(size / c.patch_size, 2));
  auto heads = [&](int64_t b, int64_t n) { return at::randn({b, H, n, hd}, options); };  // [b, H, n, hd]
  if (c.ssm.ssm()) {  // the bidirectional SSM of one block, its kernels' spectra cached after the first run
    nn::DiffuSSMBlock block(c.hidden_size, c.ssm.hourglass, c.mlp_hidden(), c.ssm.state_size, c.ssm.shared_kernel());
    block->to(options.device(), options.dtype().toScalarType());
    at::Tensor u = at::randn({B, N, D}, options);
    return [=]() mutable { block->bidirectional_ssm(u); };  // [B, N, 2D]
  }
  if (!c.proxy.proxy()) {
    at::Tensor q = heads(B, N), k = heads(B, N), v = heads(B, N);
    return [=] { nn::attention_core(q, k, v); };
  }
  const nn::WindowGrid g = proxy_window_grid(c, frames, size / c.patch_size, size / c.patch_size);
  const int split = c.proxy.proxy_split;
  const int64_t M = g.windows() * split * split;
  auto layout = std::make_shared<nn::WindowLayout>(nn::make_window_layout(g, options.device()));
  at::Tensor x = at::randn({B, N, D}, options);                                  // [B, N, D] window-major
  at::Tensor pq = heads(B, M), pk = heads(B, M), pv = heads(B, M);               // proxy self-attention
  at::Tensor cq = heads(B, N);                                                    // tokens to proxies
  at::Tensor qkv = at::randn({B, N, 3 * D}, options);                             // the windows' fused projection
  return [=] {
    nn::proxy_tokens(x, g, split);                                                // [B, M, D]
    nn::attention_core(pq, pk, pv);                                               // [B, H, M, hd]
    nn::attention_core(cq, pk, pv);                                               // [B, H, N, hd]
    nn::window_attention(qkv, H, g, *layout, false);                              // [B, N, D]
    nn::window_attention(qkv, H, g, *layout, true);                               // [B, N, D]
  };
}

void run_benchmark(const BenchOptions& o, const std::function<void(const BenchRecord&)>& on_record) {
  const at::Device device = parse_device(o.device);
  const at::ScalarType dtype = resolve_dtype(o.dtype, device);
  const bool is_file = std::filesystem::path(o.model).extension() == ".safetensors";
  validate(o, (is_file ? read_model_info(o.model) : model_spec(o.model)).config);  // before any heavy work
  nn::prefer_attention_backend(o.attention);
  SwitchRestore restore_scan{nn::s4d_scan_kernel_enabled, nn::set_s4d_scan_kernel_enabled};
  nn::set_s4d_scan_kernel_enabled(o.ssm_scan);
  LoadedModel loaded = bench_model(o.model, o.seed);
  if (!o.quantize.empty()) quantize_for_bench(loaded, o, device);
  const DiTConfig& c = loaded.info.config;
  Generator generator(loaded, device, dtype);  // moves the model to the device, eval mode
  if (o.merge_lora) {
    if (!loaded.info.config.flex.lora()) throw Error(ErrorKind::Usage, "--merge-lora needs a lora-mode flexible model");
    generator.set_lora_merged(true);
  }
  DiT& model = loaded.model;
  vae::AutoencoderKL decoder = o.vae.empty() ? vae::AutoencoderKL{nullptr} : bench_vae(o.vae, c, device, dtype);
  SwitchRestore restore_fused{cuda::fused_kernels_enabled, cuda::set_fused_kernels_enabled};
  c10::InferenceMode inference;
  const std::vector<int> sizes = o.sizes.empty() ? std::vector<int>{c.input_height} : o.sizes;
  const bool half = dtype == at::kBFloat16 || dtype == at::kHalf;
  const std::string model_name = loaded.info.name.empty() ? o.model : loaded.info.name;
  const std::vector<int> patches = o.patches.empty() ? std::vector<int>{c.patch_size} : o.patches;
  const std::vector<int> grids = o.grids.empty() ? std::vector<int>{0} : o.grids;
  const std::vector<int> frame_counts = o.frames.empty() ? std::vector<int>{c.input_frames} : o.frames;
  auto record_for = [&](int size, int frames, int patch, int grid) {
    BenchRecord r;
    r.model = model_name;
    r.params = dit_parameter_count(c);
    r.height = r.width = size;
    r.frames = frames;
    r.patch = patch;
    r.tokens = static_cast<int64_t>(frames) * (size / patch) * (size / patch);
    r.dtype = dtype_label(dtype);
    if (const quant::ModelQuantization& q = loaded.info.quantization; q.quantized()) {
      const bool symmetric = !q.fp8 && q.symmetry == quant::Symmetry::Symmetric;  // a merged IntLoRA model's format
      r.quantization = q.label() + (symmetric ? " symmetric" : "") +
                       (o.lora_rank > 0 ? c10::str(" + LoRA r", o.lora_rank) : "");
    }
    r.device = device_name(device);
    r.grid = c.sparse_grid(grid);
    r.gflops_per_image = dit_gflops(c, size, size, patch, o.merge_lora, grid, frames);
    return r;
  };
  // `total_gflops`: MAC GFLOPs of everything timed (all images, steps and branches).
  auto finish = [&](BenchRecord& r, Timing t, double total_gflops) {
    if (c.ssm.ssm()) r.ssm = o.ssm_scan && device.is_cuda() && r.path != "eager" ? "scan" : "fft";
    r.ms = t.median_ms;
    r.ms_min = t.min_ms;
    r.images_per_s = r.batch / (t.median_ms / 1e3);
    r.tflops = 2.0 * total_gflops / t.median_ms;  // GFLOP per ms = TFLOP/s
    if (device.is_cuda() && half) r.mfu = r.tflops / kPeakTflopsBf16;
    r.peak_memory_gib = peak_memory_gib(device);
    on_record(r);
  };

  for (const std::string& path : o.paths) {
    if (path != "eager" && !device.is_cuda()) {
      log::warn("bench: path '" + path + "' needs a CUDA device; skipped");
      continue;
    }
    if (path == "fast" && !cuda_graphs_available()) {
      log::warn("bench: this build has no CUDA graphs; path 'fast' skipped");
      continue;
    }
    cuda::set_fused_kernels_enabled(path != "eager");
    for (int size : sizes)
    for (int frames : frame_counts) {
      for (int batch : o.mixing ? o.batches : std::vector<int>{}) {
        BenchRecord r = record_for(size, frames, c.patch_size, 0);
        r.kind = "mixing";
        r.path = path;
        r.batch = batch;
        r.gflops_per_image = token_mixing_gflops(c, size, frames);
        reset_peak_memory(device);
        std::function<void()> run =
            token_mixing_run(c, batch, size, frames, at::TensorOptions().device(device).dtype(dtype));
        std::unique_ptr<CudaGraph> graph;
        const at::Tensor unused = at::zeros({1}, at::TensorOptions().device(device));  // a graph takes an input
        if (path == "fast") {  // as the forwards: one graph launch instead of a launch per kernel
          graph = std::make_unique<CudaGraph>(
              [&](const std::vector<at::Tensor>&) {
                run();
                return std::vector<at::Tensor>{};
              },
              std::vector<at::Tensor>{unused});
          run = [&] { graph->replay({unused}); };
        }
        const Timing timing = time_runs(run, device, o.warmup, o.reps);
        if (o.profile) r.kernels = profile_kernels(run, device, 12);
        finish(r, timing, r.gflops_per_image * batch);
      }
      for (int patch : patches)
      for (int grid : grids)
      for (int batch : o.batches) {
        at::Generator rng = at::detail::createCPUGenerator(o.seed + batch);
        const auto shape = batch_shape(batch, c.in_channels, frames, size, size);
        at::Tensor x = at::randn(shape, rng).to(device, dtype);                                  // [B, C, (F,) H, W]
        at::Tensor t = at::randint(0, c.diffusion_steps, {batch}, rng, at::kLong).to(device);  // [B]
        at::Tensor y = random_conditions(c, batch, rng).to(device);                            // [B] or [B, L]
        BenchRecord r = record_for(size, frames, patch, grid);
        r.kind = "forward";
        r.path = path;
        r.batch = batch;
        r.attention = nn::attention_backend(batch, c.num_heads, r.tokens, c.hidden_size / c.num_heads,
                                            x.options());
        std::function<void()> run = [&] { model->forward_reference(x, t, y, patch, grid); };
        std::unique_ptr<CudaGraph> graph;
        if (path == "fused") run = [&] { model->forward(x, t, y, patch, grid); };
        if (path == "fast") {
          reset_peak_memory(device);
          graph = std::make_unique<CudaGraph>(
              [&](const std::vector<at::Tensor>& in) {
                return std::vector<at::Tensor>{model->forward(in[0], in[1], in[2], patch, grid)};
              },
              std::vector<at::Tensor>{x, t, y});
          run = [&] { graph->replay({x, t, y}); };
        } else {
          reset_peak_memory(device);
        }
        const Timing timing = time_runs(run, device, o.warmup, o.reps);
        if (o.profile) r.kernels = profile_kernels(run, device, 12);
        finish(r, timing, r.gflops_per_image * batch);
      }
      if (o.sample_batch == 0) continue;
      for (const schedule::ComputeSchedule& plan : o.schedules) {
      GenerationRequest request;
      for (int i = 0; i < o.sample_batch; ++i) {
        if (c.text.enabled())
          request.prompts.push_back(longest_prompt(c));
        else
          request.labels.push_back(i % c.num_classes);
        request.seeds.push_back(o.seed + i);
      }
      request.sampler.name = o.sampler;
      request.sampler.steps = o.steps;
      request.guidance.scale = o.cfg_scale;
      request.height = request.width = size;
      request.frames = frames;
      request.allow_untrained_size = true;  // timings, not images: any size the model runs
      request.schedule = plan;
      generator.set_cuda_graphs(path == "fast");
      const ResolvedRequest resolved = generator.resolve(request);
      BenchRecord r = record_for(size, frames, c.patch_size, 0);
      r.kind = "sample";
      r.path = path;
      r.schedule = plan.text();
      r.gflops_per_generation = generator.gflops_per_image(resolved);
      r.batch = o.sample_batch;
      r.steps = o.steps;
      r.cfg_scale = o.cfg_scale;
      const int branches = resolved.guided() ? 2 : 1;
      r.attention = nn::attention_backend(branches * o.sample_batch, c.num_heads, r.tokens,
                                          c.hidden_size / c.num_heads, at::TensorOptions().device(device).dtype(dtype));
      reset_peak_memory(device);
      const Timing sample = time_runs([&] { generator.generate(resolved); }, device, 1, o.sample_reps);
      finish(r, sample, *r.gflops_per_generation * o.sample_batch);
      generator.clear_graphs();
      for (const std::string& tile : decoder ? o.vae_tiles : std::vector<std::string>{}) {
        // The generation's latents as a batch of images (a clip's frames among them), decoded to CPU images.
        at::Generator rng = at::detail::createCPUGenerator(o.seed);
        const at::Tensor latents = at::randn(batch_shape(o.sample_batch, c.in_channels, frames, size, size), rng)
                                       .view({-1, c.in_channels, size, size});  // [B F, C, h, w], values unused
        const vae::DecodePlan plan = vae::plan_decode(decoder->config(), latents.size(0), size, size,
                                                      vae::parse_tile_choice(tile), dtype, available_memory_bytes(device));
        BenchRecord d = record_for(size, frames, c.patch_size, 0);
        d.kind = "decode";
        d.path = path;
        d.batch = o.sample_batch;
        d.vae = o.vae;
        d.vae_tile = tile;
        d.tile = plan.tile;
        d.chunk = plan.chunk;
        d.gflops_per_image = 0;
        reset_peak_memory(device);
        const std::optional<double> before = allocated_memory_gib(device);
        const Timing timing = time_runs([&] { vae::decode_latents(decoder, latents, plan); }, device, 1, o.sample_reps);
        d.ms = timing.median_ms;
        d.ms_min = timing.min_ms;
        d.images_per_s = d.batch / (timing.median_ms / 1e3);
        d.decode_share = timing.median_ms / (timing.median_ms + sample.median_ms);
        d.peak_memory_gib = peak_memory_gib(device);
        if (before && d.peak_memory_gib) d.decode_memory_gib = *d.peak_memory_gib - *before;
        on_record(d);
      }
      }
    }
  }
}

}  // namespace ditgen
