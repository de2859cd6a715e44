#include "ditgen/pipeline/generator.h"

#include <algorithm>
#include <chrono>
#include <set>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <c10/core/GradMode.h>
#include <c10/util/Exception.h>

#include "ditgen/core/device.h"
#include "ditgen/core/log.h"
#include "ditgen/sampling/denoise.h"

namespace ditgen {

Generator::Generator(const std::filesystem::path& model_path, at::Device device, at::ScalarType dtype)
    : Generator(load_model(model_path, device, dtype), device, dtype) {}

Generator::Generator(LoadedModel model, at::Device device, at::ScalarType dtype)
    : model_(std::move(model)), device_(device), dtype_(dtype) {
  if (model_.info.config.text.enabled()) tokenizer_.emplace(model_.info.config.text);
  keep_fp32_exact(dtype_);
  model_.model->to(device_, dtype_);
  model_.model->eval();
}

std::pair<int, int> run_size(const DiTConfig& c, int height, int width) {
  const int h = height ? height : c.input_height, w = width ? width : c.input_width;
  if (h <= 0 || w <= 0 || h % c.patch_size || w % c.patch_size || h > 8192 || w > 8192)
    throw Error(ErrorKind::Usage, "size " + std::to_string(h) + "x" + std::to_string(w) +
                                      " must be positive multiples of the patch size " + std::to_string(c.patch_size) +
                                      " (at most 8192)");
  return {h, w};
}

int run_frames(const DiTConfig& c, int frames) {
  const int f = frames ? frames : c.input_frames;
  if (f < 1 || f > 1024) throw Error(ErrorKind::Usage, "frames must be in 1..1024");
  if (f > 1 && !c.video())
    throw Error(ErrorKind::Usage, "this is an image model: it makes no clips (frames need a video model)");
  c.check_frames(f);
  return f;
}

std::vector<int64_t> sample_shape(int64_t channels, int frames, int height, int width) {
  if (frames > 1) return {channels, frames, height, width};
  return {channels, height, width};
}

std::vector<int64_t> batch_shape(int64_t batch, int64_t channels, int frames, int height, int width) {
  std::vector<int64_t> shape = sample_shape(channels, frames, height, width);
  shape.insert(shape.begin(), batch);
  return shape;
}

void check_init_noise(const at::Tensor& noise) {
  if (noise.dim() != 4 && noise.dim() != 5)
    throw Error(ErrorKind::Input, "initial noise has shape " + c10::str(noise.sizes()) +
                                      "; it must be [N, C, H, W] (or [N, C, F, H, W] for clips)");
  if (!at::isfinite(noise).all().item<bool>())
    throw Error(ErrorKind::Input, "initial noise holds NaN or infinite values");
}

ResolvedRequest Generator::resolve(const GenerationRequest& r) const {
  const DiTConfig& c = model_.info.config;
  if (r.images() == 0) throw Error(ErrorKind::Usage, "nothing to generate: no prompts");
  if (r.seeds.size() != r.images())
    throw Error(ErrorKind::Usage, "one seed per image is needed");
  ResolvedRequest resolved;
  if (c.text.enabled()) {
    if (!r.labels.empty()) throw Error(ErrorKind::Usage, "this is a text model: give prompts, not class ids");
    const text::Tokenizer& tokenizer = *tokenizer_;
    std::vector<at::Tensor> rows;
    for (const std::string& prompt : r.prompts) {
      text::Tokens tokens = tokenizer.encode(prompt);
      rows.push_back(tokenizer.padded(tokens.ids));
      resolved.unknown_words.push_back(std::move(tokens.unknown));
    }
    resolved.conditions = at::stack(rows);  // [N, L]
    if (!r.negative_prompt.empty()) {
      text::Tokens negative = tokenizer.encode(r.negative_prompt);
      resolved.negative_ids = tokenizer.padded(negative.ids);
      resolved.negative_unknown_words = std::move(negative.unknown);
    }
  } else {
    if (!r.prompts.empty() || !r.negative_prompt.empty())
      throw Error(ErrorKind::Usage, "this model is class-conditional: give class ids, not text prompts");
    for (int64_t y : r.labels)
      if (y < 0 || y >= c.num_classes)
        throw Error(ErrorKind::Usage, "class id " + std::to_string(y) + " is out of range 0.." +
                                          std::to_string(c.num_classes - 1));
    resolved.conditions = at::tensor(r.labels, at::kLong);  // [N]
  }
  if (r.batch_size < 0) throw Error(ErrorKind::Usage, "batch size must be >= 1");
  resolved.request = r;
  std::tie(resolved.height, resolved.width) = run_size(c, r.height, r.width);
  const int h = resolved.height, w = resolved.width;
  resolved.frames = run_frames(c, r.frames);
  if (resolved.frames > 1 && r.keep_trajectory)
    throw Error(ErrorKind::Usage, "denoising trajectories are kept for images only, not clips");
  resolved.sampler = sampling::make_sampler(r.sampler, c);
  const int steps = resolved.sampler->steps();
  sampling::validate_guidance(r.guidance, c);
  r.schedule.validate(c, h, w, steps);
  resolved.guidance = r.guidance;
  resolved.guidance.weak_scale = r.schedule.weak_scale(r.guidance.scale);
  for (int k = 0; k < steps; ++k) resolved.plans.push_back(r.schedule.plan(k, steps, c, resolved.guided()));
  if (r.init_noise.defined()) {
    check_init_noise(r.init_noise);
    std::vector<int64_t> want{static_cast<int64_t>(r.images()), c.in_channels, h, w};
    if (resolved.frames > 1) want.insert(want.begin() + 2, resolved.frames);
    if (r.init_noise.sizes() != at::IntArrayRef(want))
      throw Error(ErrorKind::Input, "initial noise has shape " + c10::str(r.init_noise.sizes()) + " but this run needs " +
                                        c10::str(at::IntArrayRef(want)));
  }
  // Last, so a size the model cannot run at all is named as such first.
  if ((h != c.input_height || w != c.input_width) && !r.allow_untrained_size)
    throw Error(ErrorKind::Usage, c10::str("size ", h, "x", w, " is not the ", c.input_height, "x", c.input_width,
                                           " this model was trained at, where it gives meaningless images; pass "
                                           "--any-size to run it anyway"));
  return resolved;
}

std::vector<double> Generator::step_gflops(const ResolvedRequest& r) const {
  return schedule::step_gflops(model_.info.config, r.height, r.width, r.request.schedule, r.steps(), r.guided(),
                               model_.model->lora_merged(), r.frames);
}

std::vector<double> Generator::step_gflops(const GenerationRequest& r) const {
  const DiTConfig& c = model_.info.config;
  const auto [h, w] = run_size(c, r.height, r.width);
  return schedule::step_gflops(c, h, w, r.schedule, sampling::make_sampler(r.sampler, c)->steps(),
                               r.guidance.scale != 1.0, model_.model->lora_merged(), run_frames(c, r.frames));
}

namespace {
double sum(const std::vector<double>& values) {
  double total = 0;
  for (double v : values) total += v;
  return total;
}
}  // namespace

double Generator::gflops_per_image(const ResolvedRequest& r) const { return sum(step_gflops(r)); }
double Generator::gflops_per_image(const GenerationRequest& r) const { return sum(step_gflops(r)); }

void Generator::set_lora_merged(bool merged) {
  graphs_.clear();  // captures hold the weights they were made with
  model_.model->set_lora_merged(merged);
}

CudaGraph& Generator::step_graph(const ResolvedRequest& r, const at::Tensor& x, const at::Tensor& y,
                                  const at::Tensor& null_y, const at::Tensor& scalars, const schedule::StepPlan& plan) {
  // Everything the captured kernels depend on besides their inputs.
  const sampling::Guidance& guidance = r.guidance;
  const sampling::Sampler& sampler = *r.sampler;
  const std::string key = c10::str(x.sizes(), "|", guidance.scale, "|", guidance.channels, "|", guidance.negative_label,
                                   "|", guidance.weak_scale, "|", r.request.sampler.name, "|", sampler.needs_noise(), "|",
                                   plan.cond_patch, "|", plan.guide_patch, "|", plan.weak_guidance, "|", plan.cfg_scale, "|",
                                   plan.sparse_grid);
  std::unique_ptr<CudaGraph>& graph = graphs_[key];
  if (graph) return *graph;
  CudaGraph::Fn step = [&](const std::vector<at::Tensor>& in) -> std::vector<at::Tensor> {
    // in: x [b, C, H, W] float, t [b], y and null_y [b] or [b, L], step scalars [n], noise [b, C, H, W] when
    // the sampler needs it
    at::Tensor out =
        sampling::guided_output(model_.model, in[0].to(dtype_), in[1], in[2], in[3], guidance, plan).to(at::kFloat);
    return {sampler.step_with(in[0], out, in[4], in.size() > 5 ? in[5] : at::Tensor())};
  };
  std::vector<at::Tensor> examples{x, at::zeros({x.size(0)}, x.options()), y, null_y, scalars};
  if (sampler.needs_noise()) examples.push_back(at::zeros_like(x));
  graph = std::make_unique<CudaGraph>(step, examples);
  return *graph;
}

GenerationResult Generator::generate(const ResolvedRequest& resolved,
                                     const std::function<void(const Progress&)>& on_progress,
                                     const std::function<bool()>& cancelled) {
  c10::InferenceMode inference;
  const DiTConfig& c = model_.info.config;
  const GenerationRequest& r = resolved.request;
  const int h = resolved.height, w = resolved.width, frames = resolved.frames;
  if (c.video() && frames > 1 && frames != c.input_frames && untrained_frames_run_.insert(frames).second)
    log::warn(c10::str("making clips of ", frames, " frames; this model was trained on ", c.input_frames));
  if ((h != c.input_height || w != c.input_width) && untrained_sizes_run_.insert({h, w}).second)
    log::warn(c10::str("running at ", h, "x", w, ", a size this model was not trained at (", c.input_height, "x",
                       c.input_width, "): expect meaningless images"));
  const int n = static_cast<int>(r.images());
  int batch = r.batch_size > 0 ? std::min(r.batch_size, n) : n;
  if (r.auto_batch && auto_batch_limit_ > 0) batch = std::min(batch, auto_batch_limit_);
  const sampling::Sampler& sampler = *resolved.sampler;
  const sampling::Guidance& guidance = resolved.guidance;
  const std::vector<schedule::StepPlan>& plans = resolved.plans;
  const auto start = std::chrono::steady_clock::now();
  auto float_opts = at::TensorOptions().dtype(at::kFloat).device(device_);

  // One batch of images [begin, begin + count): the final samples, undefined when cancelled.
  auto run_batch = [&](int begin, int count, std::vector<at::Tensor>& states) -> at::Tensor {
    sampling::NoiseSource noise_source{{}, c.frame_noise_correlation};
    for (int i = begin; i < begin + count; ++i)
      noise_source.generators.push_back(at::detail::createCPUGenerator(r.seeds[i]));
    at::Tensor noise = noise_source.draw(sample_shape(c.in_channels, frames, h, w));  // [b, C, (F,) H, W]
    if (r.init_noise.defined()) noise = r.init_noise.narrow(0, begin, count).to(at::kFloat);
    at::Tensor x = noise.to(float_opts);                                  // [b, C, H, W]
    at::Tensor y = resolved.conditions.narrow(0, begin, count).to(device_);  // [b] or [b, L]
    at::Tensor null_y = sampling::unconditional(c, guidance, count, y.options(), resolved.negative_ids);  // [b] or [b, L]
    // The model runs in the requested dtype; the sampler's arithmetic stays float32.
    sampling::ModelFn model_fn = [&](const at::Tensor& xk, const at::Tensor& t, int k) {
      return sampling::guided_output(model_.model, xk.to(dtype_), t, y, null_y, guidance, plans[k], exchange_.get())
          .to(at::kFloat);
    };
    sampling::StepFn step = sampling::model_step(model_fn, sampler);
    if (uses_cuda_graphs()) {
      // Every step's timestep and scalars go to the device once; each replay copies its own in.
      std::vector<float> timesteps, scalars;
      for (int k = 0; k < sampler.steps(); ++k) {
        timesteps.push_back(static_cast<float>(sampler.model_timestep(k)));
        for (float v : sampler.step_scalars(k)) scalars.push_back(v);
      }
      at::Tensor t_table = at::tensor(timesteps).to(device_);                              // [K]
      at::Tensor s_table = at::tensor(scalars).view({sampler.steps(), -1}).to(device_);   // [K, n]
      std::map<schedule::StepPlan, CudaGraph*> graphs;  // captured once per shape and plan
      // Bound the memory held by captures of shapes no longer in use, beyond what this batch needs (a
      // schedule may have many plans); never mid-batch, where the graphs below are held.
      const size_t needed = std::set<schedule::StepPlan>(plans.begin(), plans.end()).size();
      if (graphs_.size() > 8 + needed) graphs_.clear();
      for (const schedule::StepPlan& plan : plans)
        if (!graphs.count(plan)) graphs[plan] = &step_graph(resolved, x, y, null_y, s_table[0], plan);
      step = [&, t_table, s_table, graphs](const at::Tensor& xk, int k, const at::Tensor& noise) {
        std::vector<at::Tensor> in{xk, t_table[k].expand({xk.size(0)}), y, null_y, s_table[k]};
        if (noise.defined()) in.push_back(noise);
        return graphs.at(plans[k])->replay(in)[0].clone();  // [b, C, H, W], outliving the next replay
      };
    }
    sampling::DenoiseHooks hooks;
    hooks.cancelled = cancelled;
    if (r.keep_trajectory) hooks.on_state = [&](const at::Tensor& s) { states.push_back(s.to(at::kCPU)); };
    hooks.on_step = [&](int step, int steps) {
      if (!on_progress) return;
      Progress p;
      p.images_done = begin + (step == steps ? count : 0);
      p.images_total = n;
      p.step = step;
      p.steps = steps;
      p.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      on_progress(p);
    };
    return sampling::denoise(step, sampler, x, noise_source, hooks);  // [b, C, H, W]
  };

  GenerationResult result;
  std::vector<at::Tensor> samples, trajectories;
  for (int begin = 0; begin < n;) {
    const int count = std::min(batch, n - begin);
    std::vector<at::Tensor> states;
    at::Tensor out;
    try {
      out = run_batch(begin, count, states);
    } catch (const c10::OutOfMemoryError&) {
      release_memory();
      const std::string where = c10::str("a batch of ", count, " images at ", h, "x", w, " on ", device_name(device_));
      if (!r.auto_batch || count == 1) {
        const int fits = count > 1 ? fitting_batch(resolved, count) : 0;
        throw Error(ErrorKind::Runtime,
                    fits > 0 ? c10::str("out of GPU memory generating ", where, "; a batch of ", fits,
                                        " fits (its costliest sampling step checked): use --batch-size ", fits,
                                        ", or --auto-batch to halve the batch whenever memory runs out")
                             : "out of GPU memory generating " + where + "; not even one image fits");
      }
      batch = count / 2;
      auto_batch_limit_ = batch;
      log::warn(c10::str("out of GPU memory generating ", where, "; going on with batches of ", batch));
      continue;  // the same images again, at the smaller batch
    }
    if (!out.defined()) {
      result.cancelled = true;
      return result;
    }
    samples.push_back(out.to(at::kCPU));
    if (r.keep_trajectory) trajectories.push_back(at::stack(states));  // [T+1, b, C, H, W]
    begin += count;
  }
  const at::Tensor all = at::cat(samples);                                    // [N, C, (F,) H, W]
  result.frames = frames > 1 ? all.transpose(1, 2).contiguous() : all.unsqueeze(1);  // [N, F, C, H, W]
  if (r.keep_trajectory) result.trajectory = at::cat(trajectories, 1);  // [T+1, N, C, H, W]
  return result;
}

void Generator::release_memory() {
  graphs_.clear();
  release_cached_memory(device_);
}

int Generator::fitting_batch(const ResolvedRequest& r, int failed) {
  const DiTConfig& c = model_.info.config;
  const int h = r.height, w = r.width;
  const std::vector<double> cost = step_gflops(r);
  const schedule::StepPlan& plan = r.plans[std::max_element(cost.begin(), cost.end()) - cost.begin()];
  for (int b = failed / 2; b >= 1; b /= 2) {
    bool ran = true;
    try {
      const auto shape = batch_shape(b, c.in_channels, r.frames, h, w);
      at::Tensor x = at::zeros(shape, at::TensorOptions().dtype(dtype_).device(device_));  // [b, C, (F,) H, W]
      at::Tensor t = at::zeros({b}, at::TensorOptions().dtype(at::kFloat).device(device_));
      at::Tensor y = sampling::unconditional(c, r.guidance, b, x.options(), r.negative_ids);  // [b] or [b, L]
      sampling::guided_output(model_.model, x, t, y, y, r.guidance, plan);
      synchronize(device_);
    } catch (const c10::OutOfMemoryError&) {
      ran = false;
    }
    release_memory();
    if (ran) return b;
  }
  return 0;
}

}  // namespace ditgen
