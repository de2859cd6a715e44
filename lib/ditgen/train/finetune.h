// Fine-tuning plumbing: LoRA adapters on named linear layers, freezing parameters by name, and the
// distillation loss. Names are the dotted ones of named_modules / named_parameters ("blocks.0.attn.qkv").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/module.h>

namespace ditgen::train {

// Sets requires_grad(false) on every parameter whose full name fully matches one of the ECMAScript
// `patterns` (e.g. "blocks\\.[0-9]+\\.attn\\..*", or "(?!.*lora_).*" for all but the adapters).
// Returns how many it froze. Error(Usage) naming the pattern for an invalid regex.
int freeze_parameters(torch::nn::Module& model, const std::vector<std::string>& patterns);

// Attaches a LoRA adapter (see nn::LoRALinearImpl::add_lora) to every LoRA-capable linear whose module
// name fully matches one of `target_patterns`; the i-th matched layer (module order) gets a seed derived
// from (seed, i). Returns the count. Error(Usage) for an invalid regex, for no match (listing some
// capable names), or for a layer that already has an adapter. Freezing is left to freeze_parameters.
int add_lora(torch::nn::Module& model, const std::vector<std::string>& target_patterns, int rank, double alpha,
             uint64_t seed);

// Folds every attached, unmerged adapter into its weight.
void merge_lora(torch::nn::Module& model);
// Takes every merged adapter back out of its weight.
void unmerge_lora(torch::nn::Module& model);
// Drops every adapter; merged ones stay in the weights. Call after merge_lora to save a plain model file.
void remove_lora(torch::nn::Module& model);

// Full names of the parameters that still require gradients, in registration order.
std::vector<std::string> trainable_parameter_names(const torch::nn::Module& model);

// Mean squared error between student and teacher over the first `channels` channels of dim 1 (the
// eps / velocity part, not the learned variance), in float32, with no gradient into the teacher.
// Error(Usage) for mismatched shapes or channels outside 1..size(1).
at::Tensor distillation_loss(const at::Tensor& student_out, const at::Tensor& teacher_out, int channels);

}  // namespace ditgen::train
