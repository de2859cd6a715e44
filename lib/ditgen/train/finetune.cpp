#include "ditgen/train/finetune.h"

#include <regex>

#include "ditgen/core/error.h"
#include "ditgen/nn/lora.h"

namespace ditgen::train {

namespace {

// Compiles `patterns`; `what` names them in the message for an invalid one.
std::vector<std::regex> compile(const std::vector<std::string>& patterns, const std::string& what) {
  std::vector<std::regex> out;
  for (const auto& p : patterns) {
    try {
      out.emplace_back(p, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      throw Error(ErrorKind::Usage, "invalid " + what + " pattern '" + p + "': " + e.what());
    }
  }
  return out;
}

bool matches_any(const std::string& name, const std::vector<std::regex>& regexes) {
  for (const auto& re : regexes)
    if (std::regex_match(name, re)) return true;
  return false;
}

// Every LoRA-capable linear under `model` with its dotted name, in module order.
std::vector<std::pair<std::string, nn::LoRALinearImpl*>> lora_linears(torch::nn::Module& model) {
  std::vector<std::pair<std::string, nn::LoRALinearImpl*>> out;
  for (const auto& item : model.named_modules("", /*include_self=*/false))
    if (auto* linear = item.value()->as<nn::LoRALinearImpl>()) out.emplace_back(item.key(), linear);
  return out;
}

}  // namespace

int freeze_parameters(torch::nn::Module& model, const std::vector<std::string>& patterns) {
  const auto regexes = compile(patterns, "freeze");
  int frozen = 0;
  for (auto& item : model.named_parameters()) {
    if (!matches_any(item.key(), regexes)) continue;
    item.value().requires_grad_(false);
    ++frozen;
  }
  return frozen;
}

int add_lora(torch::nn::Module& model, const std::vector<std::string>& target_patterns, int rank, double alpha,
             uint64_t seed) {
  const auto regexes = compile(target_patterns, "LoRA target");
  const auto linears = lora_linears(model);
  int added = 0;
  for (const auto& [name, linear] : linears) {
    if (!matches_any(name, regexes)) continue;
    // Golden-ratio stride: distinct per layer, and runs with nearby seeds do not share layers' draws.
    const uint64_t layer_seed = seed + 0x9E3779B97F4A7C15ULL * static_cast<uint64_t>(added + 1);
    try {
      linear->add_lora(rank, alpha, layer_seed);
    } catch (const Error& e) {
      throw Error(e.kind(), name + ": " + e.what());
    }
    ++added;
  }
  if (added == 0) {
    std::string examples;
    for (size_t i = 0; i < linears.size() && i < 6; ++i) examples += (i ? ", " : "") + linears[i].first;
    std::string targets;
    for (const auto& p : target_patterns) targets += (targets.empty() ? "'" : ", '") + p + "'";
    throw Error(ErrorKind::Usage, "no LoRA-capable linear layer matches " + (targets.empty() ? "(no patterns)" : targets) +
                                      "; such layers are named like: " + (examples.empty() ? "(none)" : examples + ", ..."));
  }
  return added;
}

void merge_lora(torch::nn::Module& model) {
  for (const auto& [name, linear] : lora_linears(model))
    if (linear->has_lora()) linear->merge();
}

void unmerge_lora(torch::nn::Module& model) {
  for (const auto& [name, linear] : lora_linears(model)) linear->unmerge();
}

void remove_lora(torch::nn::Module& model) {
  for (const auto& [name, linear] : lora_linears(model)) linear->remove_lora();
}

std::vector<std::string> trainable_parameter_names(const torch::nn::Module& model) {
  std::vector<std::string> names;
  for (const auto& item : model.named_parameters())
    if (item.value().requires_grad()) names.push_back(item.key());
  return names;
}

at::Tensor distillation_loss(const at::Tensor& student_out, const at::Tensor& teacher_out, int channels) {
  if (student_out.sizes() != teacher_out.sizes() || student_out.dim() < 2)
    throw Error(ErrorKind::Usage, "distillation needs student and teacher outputs of one shape [B, C, ...], got " +
                                      c10::str(student_out.sizes(), " and ", teacher_out.sizes()));
  if (channels < 1 || channels > student_out.size(1))
    throw Error(ErrorKind::Usage, "distillation channels must be in 1.." + std::to_string(student_out.size(1)) +
                                      ", got " + std::to_string(channels));
  // float32: a bf16 mean over many elements would round away small differences.
  at::Tensor s = student_out.narrow(1, 0, channels).to(at::kFloat);           // [B, c, ...]
  at::Tensor t = teacher_out.detach().narrow(1, 0, channels).to(at::kFloat);  // [B, c, ...]
  return (s - t).square().mean();                                              // []
}

}  // namespace ditgen::train
