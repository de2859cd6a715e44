#include "ditgen/train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/autocast_mode.h>
#include <torch/autograd.h>
#include <yaml-cpp/yaml.h>

#include "ditgen/core/log.h"
#include "ditgen/io/atomic_file.h"
#include "ditgen/io/png.h"
#include "ditgen/io/safetensors.h"
#include "ditgen/io/tensor_io.h"
#include "ditgen/models/conversions.h"
#include "ditgen/pipeline/generator.h"
#include "ditgen/pipeline/outputs.h"
#include "ditgen/sampling/flow_matching.h"
#include "ditgen/sampling/gaussian_diffusion.h"
#include "ditgen/train/finetune.h"

namespace ditgen::train {

namespace {

constexpr const char* kCheckpointKey = "ditgen.checkpoint";

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

double learning_rate(const TrainConfig& c, int64_t step) {
  if (step < c.warmup_steps) return c.lr * (step + 1) / static_cast<double>(c.warmup_steps);
  if (c.lr_schedule == "cosine") {
    const double progress = static_cast<double>(step - c.warmup_steps) / std::max<int64_t>(1, c.steps - c.warmup_steps);
    return c.lr * (0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * std::min(1.0, progress))));
  }
  return c.lr;
}

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

struct ModelSetup {
  DiT model{nullptr};
  ModelInfo info;
};

// `resumed`: the description a checkpoint carries (the model after any conversion); its weights come later.
ModelSetup build_model(const TrainConfig& c, const std::optional<ModelInfo>& resumed) {
  ModelSetup s;
  if (resumed) {
    s.info = *resumed;
    s.model = DiT(s.info.config);
    s.model->initialize_weights();
  } else if (std::filesystem::path(c.model).extension() == ".safetensors") {
    LoadedModel loaded = load_model(c.model, at::kCPU, at::kFloat);
    s.model = loaded.model;
    s.info = loaded.info;
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
  // Checked before any training: a default the final model cannot run would make that file unloadable.
  if (c.sampler_defaults_set) validate_sampler_defaults(s.info.sampler_defaults, s.info.config);
  if (!c.freeze.empty()) freeze_parameters(*s.model, c.freeze);
  if (c.lora) add_lora(*s.model, c.lora->targets, c.lora->rank, c.lora->alpha, c.seed);
  return s;
}

std::filesystem::path checkpoint_path(const TrainConfig& c) { return c.output / "checkpoint.safetensors"; }

// The model description the run's checkpoint carries when `resume` finds one; nullopt otherwise (no
// checkpoint, or one written before checkpoints carried it).
std::optional<ModelInfo> resumed_model_info(const TrainConfig& c, bool resume) {
  const auto checkpoint = checkpoint_path(c);
  if (!resume || !std::filesystem::exists(checkpoint)) return std::nullopt;
  const io::SafetensorsFile file = io::SafetensorsFile::open(checkpoint, ErrorKind::Input);
  if (!file.metadata().count("ditgen.config")) return std::nullopt;
  return model_info_from_metadata(file.metadata(), checkpoint.string());
}

std::string json_line(const nlohmann::json& j) { return j.dump() + "\n"; }

// Keeps the log lines up to `step`, so a resumed run does not list a step twice.
void trim_log(const std::filesystem::path& log, int64_t step) {
  std::ifstream in(log);
  if (!in) return;
  std::string kept, line;
  while (std::getline(in, line)) {
    try {
      if (nlohmann::json::parse(line).value("step", int64_t{0}) <= step) kept += line + "\n";
    } catch (const nlohmann::json::exception&) {
    }
  }
  in.close();
  io::AtomicFile out(log);
  out.write(kept.data(), kept.size());
  out.commit();
}

class Run {
 public:
  Run(const TrainConfig& c, const Dataset& data, bool resume)
      : c_(c), data_(data), device_(parse_device(c.device)) {
    const auto checkpoint = checkpoint_path(c_);
    if (std::filesystem::exists(checkpoint) && !resume)
      throw Error(ErrorKind::Usage, checkpoint.string() + " exists: pass --resume to continue that run, or "
                                                          "choose another output folder");
    // A resumed run rebuilds its model from the checkpoint, so the file it started from may be gone.
    const bool resuming = std::filesystem::exists(checkpoint);
    ModelSetup s = build_model(c, resumed_model_info(c, resume));
    model_ = s.model;
    info_ = s.info;
    const DiTConfig& mc = info_.config;
    if (data.channels() != mc.in_channels || data.height() % mc.patch_size || data.width() % mc.patch_size)
      throw Error(ErrorKind::Usage, "the data (" + std::to_string(data.channels()) + "x" +
                                        std::to_string(data.height()) + "x" + std::to_string(data.width()) +
                                        ") does not fit the model (" + std::to_string(mc.in_channels) +
                                        " channels, patch " + std::to_string(mc.patch_size) + ")");
    if (c.flexible) {
      auto frozen = [&](int p) { return mc.flex.lora() && p == mc.patch_size; };  // lora mode keeps it as it was
      auto fits = [&](int p) { return mc.supports_patch(p) && data.height() % p == 0 && data.width() % p == 0; };
      train_patches_ = c.flexible->train_patches;
      if (train_patches_.empty())
        for (int p : mc.runnable_patches())
          if (fits(p) && !frozen(p)) train_patches_.push_back(p);
      for (int p : train_patches_) {
        if (!fits(p) || frozen(p))
          throw Error(ErrorKind::Usage, "train_patches: patch size " + std::to_string(p) +
                                            (frozen(p) ? " is the pre-trained one, which lora mode keeps frozen"
                                                       : " is not one the model runs on this data"));
        if (mc.sparse.sparse() && token_side(p) < mc.sparse.min_grid)
          throw Error(ErrorKind::Usage, "train_patches: patch size " + std::to_string(p) + " leaves a " +
                                            std::to_string(token_side(p)) + "-token side, below the sparse min_grid " +
                                            std::to_string(mc.sparse.min_grid));
      }
      if (train_patches_.empty()) throw Error(ErrorKind::Usage, "no patch size to train");
    }
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
    for (const auto& item : model_->named_parameters()) {
      if (!item.value().requires_grad()) continue;
      names_.push_back(item.key());
      params_.push_back(item.value());
      ema_.push_back(item.value().detach().clone());
      exp_avg_.push_back(at::zeros_like(item.value()));
      exp_avg_sq_.push_back(at::zeros_like(item.value()));
    }
    if (params_.empty()) throw Error(ErrorKind::Usage, "nothing to train: every parameter is frozen");
    std::filesystem::create_directories(c_.output);
    if (resuming) {
      load_checkpoint(checkpoint);
      trim_log(c_.output / "log.jsonl", step_);
    }
  }

  TrainResult run(const std::function<void(const TrainProgress&)>& on_log, int64_t stop_after,
                  const std::function<bool()>& stop_requested) {
    run_start_ = std::chrono::steady_clock::now();
    std::ofstream log(c_.output / "log.jsonl", std::ios::app);
    at::Tensor loss_sum = at::zeros({}, at::TensorOptions().device(device_));  // summed on the device: no syncs
    double grad_norm = 0;
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
        grad_norm = norm.item<double>();  // host syncs only once per log interval
        TrainProgress p;
        p.step = step_;
        p.steps = c_.steps;
        p.loss = last_loss_ = loss_sum.item<double>() / loss_count;
        p.lr = learning_rate(c_, step_ - 1);
        p.grad_norm = grad_norm;
        p.elapsed_s = run_seconds();
        p.images_per_second = images_since / std::max(1e-9, p.elapsed_s - since);
        log << json_line({{"step", p.step}, {"loss", p.loss}, {"lr", p.lr}, {"grad_norm", p.grad_norm},
                          {"images_per_s", p.images_per_second}, {"elapsed_s", p.elapsed_s}});
        log.flush();
        if (on_log) on_log(p);
        loss_sum.zero_();
        loss_count = 0;
        images_since = 0;
        since = p.elapsed_s;
      }
      if (c_.checkpoint_every > 0 && step_ % c_.checkpoint_every == 0 && step_ < end) save_checkpoint();
      if (c_.sample_every > 0 && step_ % c_.sample_every == 0 && step_ < c_.steps) sample_grid();
      if (stop_requested && step_ < end && stop_requested()) break;
    }
    TrainResult result;
    result.steps = step_;
    result.seconds = trained_seconds();
    result.final_loss = last_loss_;
    save_checkpoint();  // also when finished: the folder then refuses a silent restart, and --resume can extend it
    if (step_ < c_.steps) return result;
    sample_grid();
    result.model_path = save_final(result);
    return result;
  }

 private:
  std::pair<at::Tensor, at::Tensor> train_step() {
    const DiTConfig& mc = info_.config;
    at::Generator g = at::detail::createCPUGenerator(mix(c_.seed, static_cast<uint64_t>(step_)));
    Batch batch = data_.get(batch_indices(c_, data_.size(), step_));
    const int64_t B = batch.images.size(0);
    at::Tensor labels = batch.labels;                                                     // [B]
    if (mc.has_null_class()) {
      at::Tensor drop = at::rand({B}, g) < mc.class_dropout_prob;                         // [B]
      labels = at::where(drop, at::full_like(labels, mc.num_classes), labels);
    }
    at::Tensor noise = at::randn(batch.images.sizes(), g);                                 // [B, C, H, W]
    at::Tensor x0 = batch.images.to(device_), eps = noise.to(device_), y = labels.to(device_);
    at::Tensor x_t, t_model, steps, noise_level;  // noise_level [B] CPU: 1 = pure noise
    const SparseConfig& q = mc.sparse;
    const schedule::Density density{q.min_grid, q.max_grid};
    // sparse_grids: timestep-batch: the batch's grid is the grid of one noise level drawn uniformly, and its
    // samples' levels are drawn from the levels inference runs at that grid: one forward a batch, and over
    // batches the per-sample mode's pairs of level and grid.
    int batch_grid = 0;
    std::pair<double, double> levels{0.0, 1.0};
    if (q.sparse() && c_.sparse_grids == "timestep-batch") {
      batch_grid = density.grid_at_noise(at::rand({1}, g).item<double>());
      levels = density.noise_range(batch_grid);
    }
    if (diffusion_) {
      const int64_t last = mc.diffusion_steps - 1;
      const auto first_step = static_cast<int64_t>(std::ceil(levels.first * last));
      const auto last_step = std::max(first_step, static_cast<int64_t>(std::floor(levels.second * last)));
      at::Tensor s = at::randint(first_step, last_step + 1, {B}, g);                       // [B]
      noise_level = s.to(at::kDouble) / std::max(1, mc.diffusion_steps - 1);
      steps = s.to(device_);
      x_t = diffusion_->q_sample(x0, steps, eps);                                          // [B, C, H, W]
      t_model = steps;
    } else {
      at::Tensor t = at::rand({B}, g) * (levels.second - levels.first) + levels.first;     // [B]
      noise_level = t.to(at::kDouble);
      t = t.to(device_);
      x_t = sampling::flow_interpolate(x0, eps, t);                                        // [B, C, H, W]
      t_model = t * 1000.0;
    }
    at::Tensor out;
    {
      AutocastGuard autocast(c_.bf16 && device_.is_cuda());
      if (!train_patches_.empty()) {
        // The batch's samples go to the patch sizes of train_patches_ in equal shares, at random: every step
        // has the same forward shapes, so their kernel plans (cuDNN attention's among them) are built once. A
        // sparse model runs each patch's samples at one grid, drawn from its range up to that patch's token side.
        at::Tensor choice = at::randperm(B, g).remainder(static_cast<int64_t>(train_patches_.size()));  // [B]
        out = grouped_forward(x_t, t_model, y, choice, [&](int64_t i) {
          const int patch = train_patches_[i];
          return std::pair{patch, q.sparse() ? random_grid(std::min(q.max_grid, token_side(patch)), g) : 0};
        });  // [B, Cout, H, W]
      } else if (q.sparse() && c_.sparse_grids == "timestep") {
        // Each sample at the grid its noise level gets at inference.
        const auto level = noise_level.accessor<double, 1>();
        std::vector<int64_t> grids;
        for (int64_t i = 0; i < B; ++i) grids.push_back(density.grid_at_noise(level[i]));
        out = grouped_forward(x_t, t_model, y, at::tensor(grids),
                              [](int64_t grid) { return std::pair{0, static_cast<int>(grid)}; });  // [B, Cout, H, W]
      } else {
        // A sparse model trains every grid it will be run at, one per batch (timestep-batch: the one drawn above).
        int grid = batch_grid;
        if (q.sparse() && grid == 0) grid = random_grid(q.max_grid, g);
        out = model_->forward(x_t, t_model, y, 0, grid);                                   // [B, Cout, H, W]
      }
    }
    out = out.to(at::kFloat);
    at::Tensor loss;
    if (teacher_) {
      at::Tensor target;
      {
        at::NoGradGuard no_grad;
        AutocastGuard autocast(c_.bf16 && device_.is_cuda());
        target = teacher_->forward(x_t, t_model, y).to(at::kFloat);                         // [B, Cout, H, W]
      }
      loss = distillation_loss(out, target, static_cast<int>(out.size(1)));
    } else if (diffusion_) {
      loss = diffusion_->training_loss(out, x0, x_t, steps, eps).mean();
    } else {
      loss = sampling::flow_training_loss(out, x0, eps).mean();
    }
    loss.backward();

    at::NoGradGuard no_grad;
    std::vector<at::Tensor> grads;
    for (auto& p : params_) grads.push_back(p.grad().defined() ? p.grad() : at::zeros_like(p));
    at::Tensor norm = at::stack(at::_foreach_norm(grads)).norm();                          // [] no host sync
    if (c_.grad_clip > 0) at::_foreach_mul_(grads, at::clamp_max(c_.grad_clip / (norm + 1e-6), 1.0));
    adamw_update(grads, learning_rate(c_, step_), step_ + 1);
    // EMA with a warm-up, so early samples are not dominated by the initialisation.
    const double decay = std::min(c_.ema_decay, (1.0 + step_) / (10.0 + step_));
    at::_foreach_lerp_(ema_, params_, 1.0 - decay);
    for (auto& p : params_) p.mutable_grad() = at::Tensor();
    return {loss.detach(), norm};
  }

  // Tokens a side of the training images at patch size p.
  int token_side(int p) const { return std::min(data_.height(), data_.width()) / p; }
  // A sparse grid drawn uniformly from the model's min_grid to max_grid.
  int random_grid(int max_grid, at::Generator& g) const {
    return static_cast<int>(at::randint(info_.config.sparse.min_grid, max_grid + 1, {1}, g).item<int64_t>());
  }

  // One forward per distinct value in `choice` [B] (CPU) over its samples, at the (patch, grid) that
  // `setting` gives the value; outputs put back in sample order. [B, C, H, W] -> [B, Cout, H, W]
  at::Tensor grouped_forward(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y, const at::Tensor& choice,
                             const std::function<std::pair<int, int>(int64_t)>& setting) {
    const int64_t B = x.size(0);
    const at::Tensor values = std::get<0>(at::_unique(choice));                             // sorted, distinct
    at::Tensor out;
    for (int64_t i = 0; i < values.numel(); ++i) {
      const int64_t value = values[i].item<int64_t>();
      at::Tensor d = (choice == value).nonzero().flatten().to(device_);                    // [b]
      const auto [patch, grid] = setting(value);
      at::Tensor part = model_->forward(x.index_select(0, d), t.index_select(0, d), y.index_select(0, d), patch,
                                        grid);                                             // [b, Cout, H, W]
      if (!out.defined()) out = at::zeros({B, part.size(1), part.size(2), part.size(3)}, part.options());
      out = out.index_copy(0, d, part);                                                    // [B, Cout, H, W]
    }
    return out;
  }

  // AdamW (decoupled weight decay) over all parameters at once; `t` is the 1-based step.
  void adamw_update(const std::vector<at::Tensor>& grads, double lr, int64_t t) {
    const double bc1 = 1 - std::pow(c_.beta1, t), bc2 = 1 - std::pow(c_.beta2, t);
    if (c_.weight_decay > 0) at::_foreach_mul_(params_, 1 - lr * c_.weight_decay);
    at::_foreach_lerp_(exp_avg_, grads, 1 - c_.beta1);
    at::_foreach_mul_(exp_avg_sq_, c_.beta2);
    at::_foreach_addcmul_(exp_avg_sq_, grads, grads, 1 - c_.beta2);
    std::vector<at::Tensor> denom = at::_foreach_sqrt(exp_avg_sq_);
    at::_foreach_div_(denom, std::sqrt(bc2));
    at::_foreach_add_(denom, 1e-8);
    at::_foreach_addcdiv_(params_, exp_avg_, denom, -lr / bc1);
  }

  void swap_ema() {
    at::NoGradGuard no_grad;
    for (size_t i = 0; i < params_.size(); ++i) {
      at::Tensor tmp = params_[i].detach().clone();
      params_[i].detach().copy_(ema_[i]);
      ema_[i].copy_(tmp);
    }
  }

  void sample_grid() {
    const DiTConfig& mc = info_.config;
    if (mc.in_channels != 1 && mc.in_channels != 3) return;
    swap_ema();
    GenerationRequest r;
    const int rows = std::min(mc.num_classes, 10), columns = 10;
    for (int row = 0; row < rows; ++row)
      for (int col = 0; col < columns; ++col) {
        r.labels.push_back(row);
        r.seeds.push_back(static_cast<uint64_t>(row * columns + col));
      }
    r.sampler = {info_.sampler_defaults.sampler, info_.sampler_defaults.steps, 0.0};
    r.guidance = {mc.has_null_class() ? info_.sampler_defaults.cfg_scale : 1.0, info_.sampler_defaults.cfg_channels};
    Generator generator(LoadedModel{model_, info_}, device_, at::kFloat);
    at::Tensor frames = generator.generate(r).frames.select(1, 0);  // [N, C, H, W]
    model_->train();
    swap_ema();
    char name[64];
    std::snprintf(name, sizeof name, "samples/step-%07lld.png", static_cast<long long>(step_));
    std::filesystem::create_directories(c_.output / "samples");
    io::write_png(c_.output / name, tile_images(frames, columns));
  }

  double run_seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start_).count();
  }
  // Training time over every run of this output folder.
  double trained_seconds() const { return seconds_before_run_ + run_seconds(); }

  void save_checkpoint() {
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    for (const auto& item : model_->named_parameters()) tensors.emplace_back("param." + item.key(), item.value());
    for (size_t i = 0; i < params_.size(); ++i) {
      tensors.emplace_back("ema." + names_[i], ema_[i]);
      tensors.emplace_back("adam.exp_avg." + names_[i], exp_avg_[i]);
      tensors.emplace_back("adam.exp_avg_sq." + names_[i], exp_avg_sq_[i]);
    }
    nlohmann::json meta{{"step", step_},
                        {"seconds", trained_seconds()},
                        {"last_loss", last_loss_},
                        {"train_config", c_.to_json()},
                        {"model", info_.name}};
    io::Metadata metadata = model_metadata(info_);  // the model's description, for --resume
    metadata[kCheckpointKey] = meta.dump();
    io::save_tensors(checkpoint_path(c_), tensors, metadata);
  }

  void load_checkpoint(const std::filesystem::path& path) {
    io::SafetensorsFile file = io::SafetensorsFile::open(path, ErrorKind::Input);
    auto meta_it = file.metadata().find(kCheckpointKey);
    if (meta_it == file.metadata().end())
      throw Error(ErrorKind::Input, path.string() + ": not a ditgen training checkpoint");
    int64_t step = 0;
    try {
      const nlohmann::json meta = nlohmann::json::parse(meta_it->second);
      step = meta.at("step").get<int64_t>();
      seconds_before_run_ = meta.value("seconds", 0.0);  // absent in checkpoints written before they were kept
      last_loss_ = meta.value("last_loss", 0.0);
    } catch (const nlohmann::json::exception& e) {
      throw Error(ErrorKind::Input, path.string() + ": malformed checkpoint metadata: " + e.what());
    }
    auto take = [&](const std::string& name, at::Tensor& into) {
      const io::TensorView* view = file.find(name);
      if (!view || at::IntArrayRef(view->shape) != into.sizes())
        throw Error(ErrorKind::Input, path.string() + ": tensor '" + name +
                                          "' is missing or has another shape (was the run's config changed?)");
      at::NoGradGuard no_grad;
      into.detach().copy_(io::to_tensor(*view));
    };
    for (auto& item : model_->named_parameters()) take("param." + item.key(), item.value());
    for (size_t i = 0; i < params_.size(); ++i) {
      take("ema." + names_[i], ema_[i]);
      take("adam.exp_avg." + names_[i], exp_avg_[i]);
      take("adam.exp_avg_sq." + names_[i], exp_avg_sq_[i]);
    }
    if (step < 0 || step > c_.steps) throw Error(ErrorKind::Input, path.string() + ": step out of range");
    step_ = step;
    log::info("resuming " + path.string() + " at step " + std::to_string(step_));
  }

  std::filesystem::path save_final(const TrainResult& result) {
    at::NoGradGuard no_grad;
    for (size_t i = 0; i < params_.size(); ++i) params_[i].detach().copy_(ema_[i]);
    if (c_.lora) {
      merge_lora(*model_);
      remove_lora(*model_);
    }
    info_.training = {{"untrained", false},
                      {"objective", objective_name(info_.config.objective)},
                      {"steps", step_},
                      {"batch_size", c_.batch_size},
                      {"lr", c_.lr},
                      {"lr_schedule", c_.lr_schedule},
                      {"ema_decay", c_.ema_decay},
                      {"seed", c_.seed},
                      {"device", device_.str()},
                      {"seconds", result.seconds},
                      {"final_loss", result.final_loss},
                      {"images_seen", step_ * c_.batch_size},
                      {"config", c_.to_json()}};
    const auto path = c_.output / "model.safetensors";
    model_->to(at::kCPU);
    save_model(path, model_, info_, parse_dtype(c_.save_dtype));
    return path;
  }

  const TrainConfig& c_;
  const Dataset& data_;
  at::Device device_;
  DiT model_{nullptr}, teacher_{nullptr};
  ModelInfo info_;
  std::optional<sampling::GaussianDiffusion> diffusion_;
  std::vector<std::string> names_;
  std::vector<at::Tensor> params_, ema_, exp_avg_, exp_avg_sq_;
  std::vector<int> train_patches_;  // flexible fine-tuning: the patch sizes samples are drawn from
  int64_t step_ = 0;
  // A resumed run's record counts the time and last loss of the runs before it too (from the checkpoint).
  double seconds_before_run_ = 0, last_loss_ = 0;
  std::chrono::steady_clock::time_point run_start_ = std::chrono::steady_clock::now();
};

}  // namespace

nlohmann::json TrainConfig::to_json() const {
  nlohmann::json j{{"model", model},         {"data_dir", data_dir.string()}, {"output", output.string()},
                   {"steps", steps},         {"batch_size", batch_size},      {"lr", lr},
                   {"warmup_steps", warmup_steps}, {"lr_schedule", lr_schedule}, {"weight_decay", weight_decay},
                   {"betas", {beta1, beta2}}, {"grad_clip", grad_clip},       {"ema_decay", ema_decay},
                   {"seed", seed},           {"bf16", bf16},                  {"freeze", freeze},
                   {"teacher", teacher},     {"save_dtype", save_dtype}};
  if (lora) j["lora"] = {{"targets", lora->targets}, {"rank", lora->rank}, {"alpha", lora->alpha}};
  if (flexible)
    j["flexible"] = {{"patch_sizes", flexible->flex.patch_sizes}, {"mode", flexible->flex.mode},
                     {"underlying_patch", flexible->flex.underlying_patch}, {"lora_rank", flexible->flex.lora_rank},
                     {"lora_alpha", flexible->flex.lora_alpha}, {"train_patches", flexible->train_patches}};
  if (sparse)
    j["sparse"] = {{"pooling_blocks", sparse->pooling_blocks}, {"modules", sparse->modules},
                   {"groups", {1, sparse->semantic, 1, sparse->dense}}, {"min_grid", sparse->min_grid},
                   {"max_grid", sparse->max_grid}};
  j["sparse_grids"] = sparse_grids;
  return j;
}

TrainConfig load_train_config(const std::filesystem::path& path) {
  YAML::Node y;
  try {
    y = YAML::LoadFile(path.string());
  } catch (const YAML::Exception& e) {
    throw Error(ErrorKind::Input, path.string() + ": " + e.what());
  }
  if (!y.IsMap()) throw Error(ErrorKind::Input, path.string() + ": expected a mapping of training settings");
  const std::filesystem::path base = path.parent_path();
  auto rel = [&](const std::string& p) {
    if (p.empty() || std::filesystem::path(p).is_absolute()) return std::filesystem::path(p);
    // Registry names (DiT-S/2) are not paths.
    if (!std::filesystem::exists(base / p) && official_configs().count(p)) return std::filesystem::path(p);
    return base / p;
  };
  TrainConfig c;
  try {
    static const std::set<std::string> known{
        "model", "data_dir", "output", "steps", "batch_size", "lr", "warmup_steps", "lr_schedule", "weight_decay",
        "betas", "grad_clip", "ema_decay", "seed", "log_every", "sample_every", "checkpoint_every", "bf16",
        "device", "freeze", "lora", "teacher", "name", "sampler_defaults", "save_dtype", "flexible", "sparse",
        "sparse_grids"};
    for (const auto& kv : y)
      if (!known.count(kv.first.as<std::string>()))
        throw Error(ErrorKind::Input, path.string() + ": unknown setting '" + kv.first.as<std::string>() + "'");
    if (!y["model"]) throw Error(ErrorKind::Input, path.string() + ": 'model' is required");
    c.model = rel(y["model"].as<std::string>()).string();
    if (y["data_dir"]) c.data_dir = rel(y["data_dir"].as<std::string>());
    // Unlike inputs, the output folder is relative to where ditgen runs.
    c.output = y["output"] ? y["output"].as<std::string>() : "runs/" + path.stem().string();
    c.steps = y["steps"].as<int64_t>(c.steps);
    c.batch_size = y["batch_size"].as<int>(c.batch_size);
    c.lr = y["lr"].as<double>(c.lr);
    c.warmup_steps = y["warmup_steps"].as<int64_t>(c.warmup_steps);
    c.lr_schedule = y["lr_schedule"].as<std::string>(c.lr_schedule);
    c.weight_decay = y["weight_decay"].as<double>(c.weight_decay);
    if (y["betas"]) {
      c.beta1 = y["betas"][0].as<double>();
      c.beta2 = y["betas"][1].as<double>();
    }
    c.grad_clip = y["grad_clip"].as<double>(c.grad_clip);
    c.ema_decay = y["ema_decay"].as<double>(c.ema_decay);
    c.seed = y["seed"].as<uint64_t>(c.seed);
    c.log_every = y["log_every"].as<int64_t>(c.log_every);
    c.sample_every = y["sample_every"].as<int64_t>(c.sample_every);
    c.checkpoint_every = y["checkpoint_every"].as<int64_t>(c.checkpoint_every);
    c.bf16 = y["bf16"].as<bool>(c.bf16);
    c.device = y["device"].as<std::string>(c.device);
    c.freeze = y["freeze"].as<std::vector<std::string>>(std::vector<std::string>{});
    if (y["lora"]) {
      LoraOptions l;
      l.targets = y["lora"]["targets"].as<std::vector<std::string>>();
      l.rank = y["lora"]["rank"].as<int>(l.rank);
      l.alpha = y["lora"]["alpha"].as<double>(l.alpha);
      c.lora = l;
    }
    if (y["teacher"]) c.teacher = rel(y["teacher"].as<std::string>()).string();
    if (const YAML::Node f = y["flexible"]) {
      if (!f.IsMap()) throw Error(ErrorKind::Input, path.string() + ": flexible must be a mapping");
      static const std::set<std::string> flex_keys{"patch_sizes", "mode", "underlying_patch", "lora_rank",
                                                   "lora_alpha", "train_patches"};
      for (const auto& kv : f)
        if (!flex_keys.count(kv.first.as<std::string>()))
          throw Error(ErrorKind::Input, path.string() + ": unknown flexible setting '" + kv.first.as<std::string>() + "'");
      FlexibleTraining ft;
      ft.flex.patch_sizes = f["patch_sizes"].as<std::vector<int>>(std::vector<int>{});
      ft.flex.mode = f["mode"].as<std::string>(ft.flex.mode);
      ft.flex.underlying_patch = f["underlying_patch"].as<int>(ft.flex.underlying_patch);
      ft.flex.lora_rank = f["lora_rank"].as<int>(ft.flex.lora_rank);
      ft.flex.lora_alpha = f["lora_alpha"].as<double>(ft.flex.lora_alpha);
      ft.train_patches = f["train_patches"].as<std::vector<int>>(std::vector<int>{});
      if (ft.flex.patch_sizes.empty()) throw Error(ErrorKind::Input, path.string() + ": flexible needs patch_sizes");
      c.flexible = ft;
    }
    if (const YAML::Node q = y["sparse"]) {
      if (!q.IsMap()) throw Error(ErrorKind::Input, path.string() + ": sparse must be a mapping");
      static const std::set<std::string> sparse_keys{"pooling_blocks", "modules", "groups", "min_grid", "max_grid"};
      for (const auto& kv : q)
        if (!sparse_keys.count(kv.first.as<std::string>()))
          throw Error(ErrorKind::Input, path.string() + ": unknown sparse setting '" + kv.first.as<std::string>() + "'");
      for (const char* key : {"pooling_blocks", "modules", "groups", "min_grid", "max_grid"})
        if (!q[key]) throw Error(ErrorKind::Input, path.string() + ": sparse needs " + key);
      SparseConfig sc;
      sc.pooling_blocks = q["pooling_blocks"].as<int>();
      sc.modules = q["modules"].as<int>();
      const auto groups = q["groups"].as<std::vector<int>>();
      if (groups.size() != 4 || groups[0] != 1 || groups[2] != 1)
        throw Error(ErrorKind::Input, path.string() + ": sparse.groups must be [1, semantic blocks, 1, dense blocks]");
      sc.semantic = groups[1];
      sc.dense = groups[3];
      sc.min_grid = q["min_grid"].as<int>();
      sc.max_grid = q["max_grid"].as<int>();
      c.sparse = sc;
    }
    c.sparse_grids = y["sparse_grids"].as<std::string>(c.sparse_grids);
    c.name = y["name"].as<std::string>("");
    c.save_dtype = y["save_dtype"].as<std::string>(c.save_dtype);
    if (y["sampler_defaults"]) {
      const auto& s = y["sampler_defaults"];
      c.sampler_defaults.sampler = s["sampler"].as<std::string>(c.sampler_defaults.sampler);
      c.sampler_defaults.steps = s["steps"].as<int>(c.sampler_defaults.steps);
      c.sampler_defaults.cfg_scale = s["cfg_scale"].as<double>(c.sampler_defaults.cfg_scale);
      c.sampler_defaults.cfg_channels = s["cfg_channels"].as<int>(c.sampler_defaults.cfg_channels);
      c.sampler_defaults.schedule = s["schedule"].as<std::string>(c.sampler_defaults.schedule);
      c.sampler_defaults_set = true;
    }
  } catch (const YAML::Exception& e) {
    throw Error(ErrorKind::Input, path.string() + ": " + e.what());
  }
  auto bad = [&](bool cond, const std::string& what) {
    if (cond) throw Error(ErrorKind::Input, path.string() + ": " + what);
  };
  bad(c.steps < 1, "steps must be >= 1");
  bad(c.batch_size < 1 || c.batch_size > 65536, "batch_size must be in 1..65536");
  bad(!(c.lr > 0) || c.lr > 1, "lr must be in (0, 1]");
  bad(c.warmup_steps < 0, "warmup_steps must be >= 0");
  bad(c.lr_schedule != "constant" && c.lr_schedule != "cosine", "lr_schedule must be constant or cosine");
  bad(c.weight_decay < 0, "weight_decay must be >= 0");
  bad(c.grad_clip < 0, "grad_clip must be >= 0");
  bad(c.ema_decay < 0 || c.ema_decay >= 1, "ema_decay must be in [0, 1)");
  bad(c.log_every < 1, "log_every must be >= 1");
  bad(c.sample_every < 0 || c.checkpoint_every < 0, "sample_every and checkpoint_every must be >= 0");
  bad(c.lora && (c.lora->rank < 1 || c.lora->targets.empty()), "lora needs targets and a rank >= 1");
  bad(c.save_dtype != "fp32" && c.save_dtype != "bf16", "save_dtype must be fp32 or bf16");
  bad(c.sparse_grids != "uniform" && c.sparse_grids != "timestep" && c.sparse_grids != "timestep-batch",
      "sparse_grids must be uniform, timestep or timestep-batch");
  bad(c.flexible && c.lora, "flexible fine-tuning does not take lora (mode: lora brings its own adapters)");
  bad(c.flexible && c.flexible->flex.lora() && !c.teacher.empty(),
      "lora-mode flexible fine-tuning distills from the model itself at its own patch size; drop teacher");
  bad(c.flexible && c.sparse_grids != "uniform",
      "flexible fine-tuning of a sparse model draws its grids uniformly (sparse_grids: uniform)");
  return c;
}

ModelInfo run_model_info(const TrainConfig& config, bool resume) {
  if (std::optional<ModelInfo> saved = resumed_model_info(config, resume)) return *saved;
  return std::filesystem::path(config.model).extension() == ".safetensors" ? read_model_info(config.model)
                                                                            : model_spec(config.model);
}

TrainResult train_model(const TrainConfig& config, const Dataset& data, bool resume,
                        const std::function<void(const TrainProgress&)>& on_log, int64_t stop_after,
                        const std::function<bool()>& stop_requested) {
  Run run(config, data, resume);
  return run.run(on_log, stop_after, stop_requested);
}

}  // namespace ditgen::train
