#include "ditgen/train/checkpoint.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <utility>

#include "ditgen/core/error.h"
#include "ditgen/core/log.h"
#include "ditgen/io/atomic_file.h"
#include "ditgen/io/json_limits.h"
#include "ditgen/io/safetensors.h"
#include "ditgen/io/tensor_io.h"

namespace ditgen::train {

namespace {

constexpr const char* kCheckpointKey = "ditgen.checkpoint";

}  // namespace

double learning_rate(const TrainConfig& c, int64_t step) {
  if (step < c.warmup_steps) return c.lr * (step + 1) / static_cast<double>(c.warmup_steps);
  if (c.lr_schedule == LrSchedule::Cosine) {
    const double progress = static_cast<double>(step - c.warmup_steps) / std::max<int64_t>(1, c.steps - c.warmup_steps);
    return c.lr * (0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * std::min(1.0, progress))));
  }
  return c.lr;
}

TrainState::TrainState(const DiT& model) {
  for (const auto& item : model->named_parameters()) {
    if (!item.value().requires_grad()) continue;
    names_.push_back(item.key());
    params_.push_back(item.value());
    ema_.push_back(item.value().detach().clone());
    exp_avg_.push_back(at::zeros_like(item.value()));
    exp_avg_sq_.push_back(at::zeros_like(item.value()));
  }
  if (params_.empty()) throw Error(ErrorKind::Usage, "nothing to train: every parameter is frozen");
}

at::Tensor TrainState::step(const TrainConfig& c, int64_t step) {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> grads;
  for (auto& p : params_) grads.push_back(p.grad().defined() ? p.grad() : at::zeros_like(p));
  at::Tensor norm = at::stack(at::_foreach_norm(grads)).norm();                          // [] no host sync
  if (c.grad_clip > 0) at::_foreach_mul_(grads, at::clamp_max(c.grad_clip / (norm + 1e-6), 1.0));
  // AdamW over all parameters at once; t is the 1-based step.
  const double lr = learning_rate(c, step);
  const int64_t t = step + 1;
  const double bc1 = 1 - std::pow(c.beta1, t), bc2 = 1 - std::pow(c.beta2, t);
  if (c.weight_decay > 0) at::_foreach_mul_(params_, 1 - lr * c.weight_decay);
  at::_foreach_lerp_(exp_avg_, grads, 1 - c.beta1);
  at::_foreach_mul_(exp_avg_sq_, c.beta2);
  at::_foreach_addcmul_(exp_avg_sq_, grads, grads, 1 - c.beta2);
  std::vector<at::Tensor> denom = at::_foreach_sqrt(exp_avg_sq_);
  at::_foreach_div_(denom, std::sqrt(bc2));
  at::_foreach_add_(denom, 1e-8);
  at::_foreach_addcdiv_(params_, exp_avg_, denom, -lr / bc1);
  // EMA with a warm-up, so early samples are not dominated by the initialisation.
  const double decay = std::min(c.ema_decay, (1.0 + step) / (10.0 + step));
  at::_foreach_lerp_(ema_, params_, 1.0 - decay);
  for (auto& p : params_) p.mutable_grad() = at::Tensor();
  return norm;
}

void TrainState::swap_ema() {
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    at::Tensor tmp = params_[i].detach().clone();
    params_[i].detach().copy_(ema_[i]);
    ema_[i].copy_(tmp);
  }
}

void TrainState::use_ema() {
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) params_[i].detach().copy_(ema_[i]);
}

std::vector<std::pair<std::string, at::Tensor>> TrainState::named_state() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (size_t i = 0; i < params_.size(); ++i) {
    out.emplace_back("ema." + names_[i], ema_[i]);
    out.emplace_back("adam.exp_avg." + names_[i], exp_avg_[i]);
    out.emplace_back("adam.exp_avg_sq." + names_[i], exp_avg_sq_[i]);
  }
  return out;
}

std::filesystem::path checkpoint_path(const std::filesystem::path& output) { return output / "checkpoint.safetensors"; }

std::optional<ModelInfo> resumed_model_info(const std::filesystem::path& output, bool resume) {
  const auto checkpoint = checkpoint_path(output);
  if (!resume || !std::filesystem::exists(checkpoint)) return std::nullopt;
  const io::SafetensorsFile file = io::SafetensorsFile::open(checkpoint, ErrorKind::Input);
  if (!file.metadata().count("ditgen.config")) return std::nullopt;
  return model_info_from_metadata(file.metadata(), checkpoint.string());
}

namespace {

// The buffers that hold a quantized or IntLoRA layer's integers, scales and auxiliary matrix: they are not
// parameters, and a resumed run cannot remake them (IntLoRA quantizes the float weights it then drops).
std::vector<std::pair<std::string, at::Tensor>> quantized_buffers(const DiT& model) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& item : model->named_buffers())
    if (item.key().find(".quantized.") != std::string::npos || item.key().find(".intlora.") != std::string::npos)
      out.emplace_back("buffer." + item.key(), item.value());
  return out;
}

}  // namespace

void save_checkpoint(const TrainConfig& c, const ModelInfo& info, const DiT& model, const TrainState& state,
                     const CheckpointRecord& record) {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& item : model->named_parameters()) tensors.emplace_back("param." + item.key(), item.value());
  for (auto& named : quantized_buffers(model)) tensors.push_back(std::move(named));
  for (auto& named : state.named_state()) tensors.push_back(std::move(named));
  nlohmann::json meta{{"step", record.step},
                      {"seconds", record.seconds},
                      {"last_loss", record.last_loss},
                      {"train_config", c.to_json()},
                      {"model", info.name}};
  io::Metadata metadata = model_metadata(info);  // the model's description, for --resume
  metadata[kCheckpointKey] = meta.dump();
  io::save_tensors(checkpoint_path(c.output), tensors, metadata);
}

CheckpointRecord load_checkpoint(const std::filesystem::path& path, const DiT& model, TrainState& state,
                                 int64_t steps) {
  io::SafetensorsFile file = io::SafetensorsFile::open(path, ErrorKind::Input);
  auto meta_it = file.metadata().find(kCheckpointKey);
  if (meta_it == file.metadata().end()) throw Error(ErrorKind::Input, path.string() + ": not a ditgen training checkpoint");
  CheckpointRecord record;
  try {
    const nlohmann::json meta = io::parse_json(meta_it->second, ErrorKind::Input, path.string() + ": checkpoint metadata");
    record.step = meta.at("step").get<int64_t>();
    record.seconds = meta.value("seconds", 0.0);  // absent in checkpoints written before they were kept
    record.last_loss = meta.value("last_loss", 0.0);
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorKind::Input, path.string() + ": malformed checkpoint metadata: " + e.what());
  }
  auto take = [&](const std::string& name, const at::Tensor& into) {
    const io::TensorView* view = file.find(name);
    if (!view || at::IntArrayRef(view->shape) != into.sizes())
      throw Error(ErrorKind::Input, path.string() + ": tensor '" + name +
                                        "' is missing or has another shape (was the run's config changed?)");
    at::NoGradGuard no_grad;
    into.detach().copy_(io::to_tensor(*view));
  };
  for (const auto& item : model->named_parameters()) take("param." + item.key(), item.value());
  for (const auto& [name, tensor] : quantized_buffers(model)) take(name, tensor);
  for (const auto& [name, tensor] : state.named_state()) take(name, tensor);
  if (record.step < 0 || record.step > steps) throw Error(ErrorKind::Input, path.string() + ": step out of range");
  log::info("resuming " + path.string() + " at step " + std::to_string(record.step));
  return record;
}

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

}  // namespace ditgen::train
