#include "ditgen/train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <optional>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/autocast_mode.h>
#include <torch/autograd.h>

#include "ditgen/core/error.h"
#include "ditgen/core/format.h"
#include "ditgen/data/moving_captions.h"
#include "ditgen/dist/data_parallel.h"
#include "ditgen/io/png.h"
#include "ditgen/models/conversions.h"
#include "ditgen/pipeline/generator.h"
#include "ditgen/pipeline/outputs.h"
#include "ditgen/sampling/flow_matching.h"
#include "ditgen/sampling/frame_noise.h"
#include "ditgen/sampling/gaussian_diffusion.h"
#include "ditgen/sampling/guidance.h"
#include "ditgen/text/tokenizer.h"
#include "ditgen/train/checkpoint.h"
#include "ditgen/train/finetune.h"
#include "ditgen/train/sample_plan.h"

namespace ditgen::train {

namespace {

// SplitMix64: independent, reproducible streams per (seed, counter).
uint64_t mix(uint64_t seed, uint64_t counter) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ull * (counter + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// bf16 autocast on CUDA for the forward pass only.
class AutocastGuard {
 public:
  explicit AutocastGuard(bool on) : on_(on) {
    if (!on_) return;
    at::autocast::set_autocast_enabled(at::kCUDA, true);
    at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
  }
  ~AutocastGuard() {
    if (!on_) return;
    at::autocast::set_autocast_enabled(at::kCUDA, false);
    at::autocast::clear_cache();
  }

 private:
  bool on_;
};

// The examples of `step`: a fresh permutation of the data each epoch, both derived from the seed, so a
// resumed run sees exactly the batches an uninterrupted one would.
std::vector<int64_t> batch_indices(const TrainConfig& c, int64_t n, int64_t step) {
  std::vector<int64_t> out;
  out.reserve(c.batch_size);
  for (int64_t k = step * c.batch_size; k < (step + 1) * c.batch_size; ++k) {
    const int64_t epoch = k / n, pos = k % n;
    static thread_local std::pair<int64_t, at::Tensor> cached{-1, at::Tensor()};
    if (cached.first != epoch || cached.second.numel() != n) {
      at::Generator g = at::detail::createCPUGenerator(mix(c.seed, 0x4e504f4348ull + epoch));
      cached = {epoch, at::randperm(n, g)};
    }
    out.push_back(cached.second.data_ptr<int64_t>()[pos]);
  }
  return out;
}

// IntLoRA layers in place of the float projections, or (for QLoRA) the projections quantized and switched to
// their float fake-quant path: it runs on any device and passes gradients to earlier layers.
void quantize_for_training(const TrainConfig& c, LoadedModel& s) {
  const QuantizedTraining& q = *c.quantization;
  if (c.intlora) {
    quant::IntLoRASpec spec;
    spec.kind = c.intlora->kind;
    spec.rank = c.intlora->rank;
    spec.alpha = c.intlora->alpha;
    spec.weight = {q.weight_bits, quant::Symmetry::Asymmetric, quant::ClipSearch::Mse};
    spec.activations = q.activations;
    spec.seed = c.seed;
    quant::add_intlora(s.model, spec);
    return;
  }
  s.info.quantization = quant::quantize_model(s.model, q.weight_bits, quant::Symmetry::Asymmetric, q.activations);
  for (auto& [name, linear] : quant::quantizable_layers(s.model)) linear->quantized->use_reference(true);
}

// The model a run trains, converted, frozen and with adapters per the config. `resumed`: the description a
// checkpoint carries (the model after any conversion); its weights come later.
LoadedModel build_model(const TrainConfig& c, const std::optional<ModelInfo>& resumed) {
  at::manual_seed(c.seed);  // what a conversion draws (a new word's embedding, new layers) comes from the seed
  LoadedModel s;
  if (resumed) {
    s.info = *resumed;
    s.model = DiT(s.info.config);
    s.model->initialize_weights();
  } else if (std::filesystem::path(c.model).extension() == ".safetensors") {
    s = load_model(c.model, at::kCPU, at::kFloat);
    if (s.info.quantization.quantized())
      throw Error(ErrorKind::Usage, c.model + " is quantized: train from the float model with a quantization section");
  } else {
    s.info = model_spec(c.model);
    s.model = DiT(s.info.config);
    at::manual_seed(c.seed);
    s.model->initialize_weights();
  }
  if (!c.name.empty()) s.info.name = c.name;
  if (c.sampler_defaults_set) s.info.sampler_defaults = c.sampler_defaults;
  if (c.flexible) {
    if (!s.info.config.flex.flexible()) s.model = make_flexible(s.model, c.flexible->flex);
    s.info.config = s.model->config();
    // LoRA mode trains only what belongs to the new patch sizes; the pre-trained model stays as it was.
    if (s.info.config.flex.lora()) freeze_parameters(*s.model, {"(?!flex\\.)(?!.*\\.lora_[AB]_p[0-9]+$).*"});
  }
  if (c.sparse) {
    if (!s.info.config.sparse.sparse()) s.model = make_sparse(s.model, *c.sparse);
    s.info.config = s.model->config();
  }
  if (c.proxy) {
    if (!s.info.config.proxy.proxy())
      s.model = make_proxy(s.model, c.proxy->layout, c.proxy->depth ? c.proxy->depth : s.info.config.depth);
    s.info.config = s.model->config();
  }
  if (c.video) {
    if (!s.info.config.video()) {
      // The moving captions' words the image model never learned join its vocabulary.
      std::vector<std::string> more_words;
      if (s.info.config.text.enabled())
        for (const std::string& w : data::moving_caption_words())
          if (!std::count(s.info.config.text.vocabulary.begin(), s.info.config.text.vocabulary.end(), w))
            more_words.push_back(w);
      s.model = make_video(s.model, c.video->frames, c.video->window_frames, more_words,
                           c.video->noise_correlation.value_or(0));
      // They start as the known words nearest in meaning, so the first clips show items, not a dark mean.
      std::vector<std::pair<std::string, std::string>> starts;
      for (const auto& start : data::moving_word_starts())
        if (std::count(more_words.begin(), more_words.end(), start.first) &&
            !std::count(more_words.begin(), more_words.end(), start.second))
          starts.push_back(start);
      start_words_as(s.model, starts);
    }
    s.info.config = s.model->config();
    if (c.video->noise_correlation && *c.video->noise_correlation != s.info.config.frame_noise_correlation)
      throw Error(ErrorKind::Usage, "video.noise_correlation " + format_number(*c.video->noise_correlation) +
                                        " differs from the video model's frame_noise_correlation " +
                                        format_number(s.info.config.frame_noise_correlation));
  }
  if (c.subject) {
    if (!s.info.config.text.enabled()) throw Error(ErrorKind::Usage, "subject fine-tuning needs a text model");
    const std::vector<std::string>& words = s.info.config.text.vocabulary;
    if (!std::count(words.begin(), words.end(), c.subject->word)) s.model = with_words(s.model, {c.subject->word});
    s.info.config = s.model->config();
  }
  // Checked before any training: a default the final model cannot run would make that file unloadable.
  if (c.sampler_defaults_set) validate_sampler_defaults(s.info.sampler_defaults, s.info.config);
  if (!c.freeze.empty()) freeze_parameters(*s.model, c.freeze);
  if (c.quantization) quantize_for_training(c, s);
  if (c.lora) add_lora(*s.model, c.lora->targets, c.lora->rank, c.lora->alpha, c.seed);
  // A quantized model trains its adapters only (its integers are no parameters; nothing else may move).
  if (c.quantization) freeze_parameters(*s.model, {"(?!.*\\.lora_[AB]$).*"});
  return s;
}

// The description of the model to resume; Error(Usage) when a checkpoint exists and resume is not set, so no
// run is overwritten by accident.
std::optional<ModelInfo> refuse_silent_restart(const TrainConfig& c, bool resume) {
  const auto checkpoint = checkpoint_path(c.output);
  if (std::filesystem::exists(checkpoint) && !resume)
    throw Error(ErrorKind::Usage, checkpoint.string() + " exists: pass --resume to continue that run, or "
                                                        "choose another output folder");
  return resumed_model_info(c.output, resume);
}

// A text model (one with a tokenizer) needs captions, and a vocabulary holding every word they use (checked on
// the first 1,000): a caption word the encoder cannot see would silently train the wrong condition.
// Error(Usage) otherwise.
void check_captions(const std::optional<text::Tokenizer>& tokenizer, const data::Dataset& data) {
  std::vector<int64_t> first(static_cast<size_t>(std::min<int64_t>(1000, data.size())));
  for (size_t i = 0; i < first.size(); ++i) first[i] = static_cast<int64_t>(i);
  const std::vector<std::string> captions = data.get(first).captions;
  if (!tokenizer) {
    if (!captions.empty()) throw Error(ErrorKind::Usage, "the data is captioned but the model takes classes: train a text model");
    return;
  }
  if (captions.size() != first.size()) throw Error(ErrorKind::Usage, "a text model needs captioned data (scenes)");
  std::vector<std::string> missing;
  for (const std::string& caption : captions)
    for (const std::string& word : tokenizer->encode(caption).unknown)
      if (std::find(missing.begin(), missing.end(), word) == missing.end()) missing.push_back(word);
  if (missing.empty()) return;
  std::string words;
  for (const std::string& w : missing) words += (words.empty() ? "" : ", ") + w;
  throw Error(ErrorKind::Usage, "the model's vocabulary lacks words the training captions use: " + words);
}

class Run {
 public:
  Run(const TrainConfig& c, const data::Dataset& data, bool resume, dist::Rendezvous* rendezvous)
      : c_(c), data_(data), device_(parse_device(c.device)), share_{0, c.batch_size},
        lead_(!rendezvous || rendezvous->env().rank == 0) {
    // A resumed run rebuilds its model from the checkpoint, so the file it started from may be gone.
    LoadedModel s = build_model(c, refuse_silent_restart(c, resume));
    model_ = s.model;
    info_ = s.info;
    const DiTConfig& mc = info_.config;
    if (data.channels() != mc.in_channels || data.height() % mc.patch_size || data.width() % mc.patch_size)
      throw Error(ErrorKind::Usage, "the data (" + std::to_string(data.channels()) + "x" +
                                        std::to_string(data.height()) + "x" + std::to_string(data.width()) +
                                        ") does not fit the model (" + std::to_string(mc.in_channels) +
                                        " channels, patch " + std::to_string(mc.patch_size) + ")");
    if (data.frames() > 1 && !mc.video())
      throw Error(ErrorKind::Usage, "the data are clips of " + std::to_string(data.frames()) +
                                        " frames: a model trains on clips when its config sets input_frames");
    mc.check_frames(data.frames());
    plan_.emplace(c, mc, data.height(), data.width());
    if (mc.text.enabled()) tokenizer_.emplace(mc.text);
    check_captions(tokenizer_, data);
    if (mc.flex.lora() && !c.teacher.empty())
      throw Error(ErrorKind::Usage, "a lora-mode flexible model distills from itself at its own patch size; drop teacher");
    if (mc.objective == Objective::Eps)
      diffusion_.emplace(mc.diffusion_steps, mc.diffusion_steps,
                         mc.learn_sigma ? sampling::VarianceType::LearnedRange : sampling::VarianceType::FixedLarge);
    if (!c.teacher.empty()) {
      teacher_ = load_model(c.teacher, device_, at::kFloat).model;
      for (auto& p : teacher_->parameters()) p.set_requires_grad(false);
    }
    // FlexiDiT variant B: the frozen model itself, at its own patch size (no adapter), is the teacher.
    if (mc.flex.lora()) teacher_ = model_;
    model_->to(device_);
    model_->train();
    state_.emplace(model_);
    std::filesystem::create_directories(c_.output);
    if (std::filesystem::exists(checkpoint_path(c_.output))) {
      const CheckpointRecord record = load_checkpoint(checkpoint_path(c_.output), model_, *state_, c_.steps);
      step_ = record.step;
      seconds_before_run_ = record.seconds;
      last_loss_ = record.last_loss;
      if (lead_) trim_log(c_.output / "log.jsonl", step_);
    }
    if (rendezvous && rendezvous->env().distributed()) join(*rendezvous);
  }

  TrainResult run(const std::function<void(const TrainProgress&)>& on_log, int64_t stop_after,
                  const std::function<bool()>& stop_requested) {
    run_start_ = std::chrono::steady_clock::now();
    std::ofstream log;
    if (lead_) log.open(c_.output / "log.jsonl", std::ios::app);
    at::Tensor loss_sum = at::zeros({}, at::TensorOptions().device(device_));  // summed on the device: no syncs
    int64_t loss_count = 0, images_since = 0;
    double since = 0;
    const int64_t end = stop_after > 0 ? std::min(stop_after, c_.steps) : c_.steps;
    while (step_ < end) {
      auto [loss, norm] = train_step();
      ++step_;
      images_since += c_.batch_size;
      loss_sum += loss;
      ++loss_count;
      if (step_ % c_.log_every == 0 || step_ == end) {
        TrainProgress p;
        p.step = step_;
        p.steps = c_.steps;
        p.loss = last_loss_ = mean_over_ranks(loss_sum.item<double>() / loss_count);
        p.lr = learning_rate(c_, step_ - 1);
        p.grad_norm = norm.item<double>();  // host syncs only once per log interval
        p.elapsed_s = run_seconds();
        p.images_per_second = images_since / std::max(1e-9, p.elapsed_s - since);
        if (lead_)
          log << nlohmann::json{{"step", p.step}, {"loss", p.loss}, {"lr", p.lr}, {"grad_norm", p.grad_norm},
                              {"images_per_s", p.images_per_second}, {"elapsed_s", p.elapsed_s}}.dump()
            << "\n";
        log.flush();
        if (on_log && lead_) on_log(p);
        loss_sum.zero_();
        loss_count = 0;
        images_since = 0;
        since = p.elapsed_s;
      }
      if (c_.checkpoint_every > 0 && step_ % c_.checkpoint_every == 0 && step_ < end) save();
      if (c_.sample_every > 0 && step_ % c_.sample_every == 0 && step_ < c_.steps) sample_grid();
      const bool stop = stop_requested && stop_requested();
      if (step_ < end && (data_parallel_ ? data_parallel_->any(stop) : stop)) break;  // every rank at one step
    }
    TrainResult result;
    result.steps = step_;
    result.seconds = trained_seconds();
    result.final_loss = last_loss_;
    save();  // also when finished: the folder then refuses a silent restart, and --resume can extend it
    if (step_ < c_.steps || !lead_) return result;
    sample_grid();
    result.model_path = save_final(result);
    return result;
  }

 private:
  // One optimizer step on the batch of step_: returns its loss and the gradients' global norm, [] each.
  std::pair<at::Tensor, at::Tensor> train_step() {
    const DiTConfig& mc = info_.config;
    at::Generator g = at::detail::createCPUGenerator(mix(c_.seed, static_cast<uint64_t>(step_)));
    // Every draw is made for the whole global batch of B, in every rank alike; a rank keeps its share's b.
    const std::vector<int64_t> examples = batch_indices(c_, data_.size(), step_);
    data::Batch batch = data_.get({examples.begin() + share_.first, examples.begin() + share_.first + share_.second});
    const int64_t B = c_.batch_size, b = share_.second;
    auto mine = [&](const at::Tensor& t) { return t.narrow(0, share_.first, b); };     // [B, ...] -> [b, ...]
    at::Tensor condition = conditions(batch);                                             // [b] or [b, L]
    if (mc.has_null_class()) {
      // Classifier-free guidance's null: the null class, or the empty prompt, this often.
      at::Tensor drop = mine(at::rand({B}, g) < mc.class_dropout_prob);                   // [b]
      if (condition.dim() == 2) drop = drop.unsqueeze(1);                                 // [b, 1]
      condition = at::where(drop, sampling::unconditional(mc, {}, b, condition.options()), condition);
    }
    const double correlation = batch.images.dim() == 5 ? mc.frame_noise_correlation : 0;  // clips only
    std::vector<int64_t> shape = batch.images.sizes().vec();
    shape[0] = B;
    at::Tensor noise = mine(sampling::frame_noise(shape, g, correlation));                 // [b, C, (F,) H, W]
    at::Tensor x0 = batch.images.to(device_), eps = noise.to(device_), y = condition.to(device_);
    at::Tensor x_t, t_model, steps, noise_level;  // noise_level [B] CPU: 1 = pure noise
    const NoiseRange levels = plan_->noise_range(g);
    if (diffusion_) {
      const int64_t last = mc.diffusion_steps - 1;
      const auto first_step = static_cast<int64_t>(std::ceil(levels.low * last));
      const auto last_step = std::max(first_step, static_cast<int64_t>(std::floor(levels.high * last)));
      at::Tensor s = at::randint(first_step, last_step + 1, {B}, g);                       // [B]
      noise_level = s.to(at::kDouble) / std::max(1, mc.diffusion_steps - 1);
      steps = mine(s).to(device_);                                                         // [b]
      x_t = diffusion_->q_sample(x0, steps, eps);                                          // [B, C, H, W]
      t_model = steps;
    } else {
      at::Tensor t = at::rand({B}, g) * (levels.high - levels.low) + levels.low;           // [B]
      noise_level = t.to(at::kDouble);
      t = mine(t).to(device_);                                                             // [b]
      x_t = sampling::flow_interpolate(x0, eps, t);                                        // [B, C, H, W]
      t_model = t * 1000.0;
    }
    BatchSettings settings = plan_->settings(noise_level, levels, g);
    settings.group = mine(settings.group);
    at::Tensor out;
    {
      AutocastGuard autocast(autocast_on());
      out = forward_at(model_, x_t, t_model, y, settings);                                 // [B, Cout, H, W]
    }
    out = out.to(at::kFloat);
    at::Tensor loss;
    if (teacher_) {
      at::Tensor target;
      {
        at::NoGradGuard no_grad;
        AutocastGuard autocast(autocast_on());
        target = teacher_->forward(x_t, t_model, y).to(at::kFloat);                         // [B, Cout, H, W]
      }
      loss = distillation_loss(out, target, static_cast<int>(out.size(1)));
    } else if (diffusion_) {
      loss = diffusion_->training_loss(out, x0, x_t, steps, eps).mean();
    } else {
      loss = sampling::flow_training_loss(out, x0, eps).mean();
    }
    loss.backward();
    if (data_parallel_) data_parallel_->finish();  // the gradients of the global batch's mean loss
    at::Tensor norm = state_->step(c_, step_);
    return {loss.detach(), norm};
  }

  // bf16 autocast: asked for, on CUDA, and not on a quantized model (its values must stay exact).
  bool autocast_on() const { return c_.bf16 && device_.is_cuda() && !c_.quantization; }

  // What the model is conditioned on: the batch's class ids [B], or its captions' token ids [B, L].
  at::Tensor conditions(const data::Batch& batch) const {
    return tokenizer_ ? tokenizer_->encode_batch(batch.captions) : batch.labels;
  }

  // A 10 x 10 grid of samples of the EMA model (a row a class; for a text model the first 100 captions of the
  // data; for a video model a row of frames for each of its first 10 captions) into
  // output/samples/step-NNNNNNN.png.
  void sample_grid() {
    const DiTConfig& mc = info_.config;
    if (!lead_ || (mc.in_channels != 1 && mc.in_channels != 3)) return;
    state_->swap_ema();
    GenerationRequest r;
    const int frames = data_.frames();
    const int columns = frames > 1 ? frames : 10;
    if (mc.text.enabled()) {
      std::vector<int64_t> first(static_cast<size_t>(std::min<int64_t>(frames > 1 ? 10 : 100, data_.size())));
      for (size_t i = 0; i < first.size(); ++i) first[i] = static_cast<int64_t>(i);
      r.prompts = data_.get(first).captions;
    } else {
      for (int row = 0; row < std::min(mc.num_classes, 10); ++row)
        for (int col = 0; col < columns; ++col) r.labels.push_back(row);
    }
    for (size_t i = 0; i < r.images(); ++i) r.seeds.push_back(i);
    r.sampler = {info_.sampler_defaults.sampler, info_.sampler_defaults.steps, 0.0};
    r.guidance = {mc.has_null_class() ? info_.sampler_defaults.cfg_scale : 1.0, info_.sampler_defaults.cfg_channels};
    r.frames = frames;
    Generator generator(LoadedModel{model_, info_}, device_, at::kFloat);
    if (c_.quantization) generator.set_cuda_graphs(false);  // quantizers compute their scales eagerly
    at::Tensor images = generator.generate(r).frames.flatten(0, 1);  // [N * F, C, H, W]
    model_->train();
    state_->swap_ema();
    char name[64];
    std::snprintf(name, sizeof name, "samples/step-%07lld.png", static_cast<long long>(step_));
    std::filesystem::create_directories(c_.output / "samples");
    io::write_png(c_.output / name, tile_images(images, columns));
  }

  double run_seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start_).count();
  }
  // Training time over every run of this output folder.
  double trained_seconds() const { return seconds_before_run_ + run_seconds(); }

  void save() {
    if (lead_) save_checkpoint(c_, info_, model_, *state_, {step_, trained_seconds(), last_loss_});
  }

  // A data-parallel run: this rank trains its share of each global batch, its gradients averaged with the
  // others' (dist/data_parallel.h). Error(Usage) when the batch does not divide among the ranks.
  void join(dist::Rendezvous& rendezvous) {
    const dist::DistEnv& env = rendezvous.env();
    if (c_.batch_size % env.world_size)
      throw Error(ErrorKind::Usage, c10::str("batch_size ", c_.batch_size, " does not divide among ", env.world_size,
                                             " processes: give each the same share"));
    share_ = {env.rank * (c_.batch_size / env.world_size), c_.batch_size / env.world_size};
    gradient_group_.emplace(rendezvous, "train-gradients", device_);
    control_group_.emplace(rendezvous, "train-control", at::kCPU);
    std::vector<at::Tensor> trainable;
    double weights = 0;
    for (const at::Tensor& p : model_->parameters()) {
      if (p.requires_grad()) trainable.push_back(p);
      weights += p.to(at::kDouble).sum().item<double>();
    }
    data_parallel_.emplace(*gradient_group_, *control_group_, trainable);
    data_parallel_->check_same({static_cast<double>(step_), weights}, "weights or step");
  }

  // The mean of a value over the ranks (each averaged over an equal share of the batch).
  double mean_over_ranks(double mine) {
    return data_parallel_ ? control_group_->sum(mine) / control_group_->size() : mine;
  }

  // The EMA weights, adapters merged, as output/model.safetensors with the run recorded in its metadata.
  std::filesystem::path save_final(const TrainResult& result) {
    at::NoGradGuard no_grad;
    state_->use_ema();
    if (c_.lora) {
      merge_lora(*model_);  // QLoRA: re-quantized from the dequantized weight plus the adapter
      remove_lora(*model_);
    }
    quant::MergeError merge_error;
    if (c_.intlora) info_.quantization = quant::merge_intlora(model_, &merge_error);
    info_.training = {{"untrained", false},
                      {"objective", objective_name(info_.config.objective)},
                      {"steps", step_},
                      {"batch_size", c_.batch_size},
                      {"lr", c_.lr},
                      {"lr_schedule", lr_schedule_name(c_.lr_schedule)},
                      {"ema_decay", c_.ema_decay},
                      {"seed", c_.seed},
                      {"device", device_.str()},
                      {"seconds", result.seconds},
                      {"final_loss", result.final_loss},
                      {"images_seen", step_ * c_.batch_size},
                      {"config", c_.to_json()}};
    if (c_.intlora)
      info_.training["intlora_merge"] = {{"relative_error", merge_error.relative},
                                         {"max_abs_error", merge_error.max_abs},
                                         {"requantized_rows", merge_error.requantized_rows}};
    const auto path = c_.output / "model.safetensors";
    model_->to(at::kCPU);
    save_model(path, model_, info_, c_.save_dtype);
    return path;
  }

  const TrainConfig& c_;
  const data::Dataset& data_;
  at::Device device_;
  std::optional<text::Tokenizer> tokenizer_;  // text models: their captions' ids
  DiT model_{nullptr}, teacher_{nullptr};
  ModelInfo info_;
  std::optional<SamplePlan> plan_;  // once the model is known
  std::optional<sampling::GaussianDiffusion> diffusion_;
  std::optional<TrainState> state_;  // after the model is on its device
  // Data-parallel runs: this rank's share of each batch (offset, count), its groups and gradient exchange;
  // only the lead (rank 0) writes logs, checkpoints, samples and the model.
  std::pair<int64_t, int64_t> share_;
  bool lead_ = true;
  std::optional<dist::ProcessGroup> gradient_group_, control_group_;
  std::optional<dist::DataParallel> data_parallel_;
  int64_t step_ = 0;
  // A resumed run's record counts the time and last loss of the runs before it too (from the checkpoint).
  double seconds_before_run_ = 0, last_loss_ = 0;
  std::chrono::steady_clock::time_point run_start_ = std::chrono::steady_clock::now();
};

}  // namespace

ModelInfo run_model_info(const TrainConfig& config, bool resume) {
  if (std::optional<ModelInfo> saved = resumed_model_info(config.output, resume)) return *saved;
  return std::filesystem::path(config.model).extension() == ".safetensors" ? read_model_info(config.model)
                                                                            : model_spec(config.model);
}

TrainResult train_model(const TrainConfig& config, const data::Dataset& data, bool resume,
                        const std::function<void(const TrainProgress&)>& on_log, int64_t stop_after,
                        const std::function<bool()>& stop_requested, dist::Rendezvous* rendezvous) {
  Run run(config, data, resume, rendezvous);
  return run.run(on_log, stop_after, stop_requested);
}

}  // namespace ditgen::train
