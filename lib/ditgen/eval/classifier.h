// The Fashion-MNIST classifier behind our FID and class-accuracy metrics: a small CNN whose penultimate
// layer plays the role Inception's pool features play for ImageNet FID (Inception knows nothing of 32x32
// grey clothes).
#pragma once

#include <cstdint>
#include <filesystem>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include "ditgen/data/dataset.h"

namespace ditgen::eval {

class FmnistClassifierImpl : public torch::nn::Module {
 public:
  static constexpr int kClasses = 10;
  static constexpr int kFeatures = 256;

  // Randomly initialised (LibTorch's default initialisation; seed with at::manual_seed first).
  FmnistClassifierImpl();

  // Class logits of images x [B, 1, 32, 32] in [-1, 1] -> [B, 10].
  at::Tensor forward(const at::Tensor& x);
  // Penultimate features (after the activation) of x [B, 1, 32, 32] -> [B, 256].
  at::Tensor features(const at::Tensor& x);
  // Logits from penultimate features f [B, 256] -> [B, 10], so one pass can give both.
  at::Tensor classify(const at::Tensor& f);

  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr}, conv4{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr}, bn3{nullptr}, bn4{nullptr};
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(FmnistClassifier);

struct ClassifierTrainOptions {
  std::filesystem::path data_dir;  // Fashion-MNIST folder (the convenience overload); empty = the default
  int epochs = 10;
  int batch_size = 256;
  double lr = 1e-3;
  uint64_t seed = 0;
  at::Device device = at::kCPU;
  int64_t limit = 0;  // use only the first N train images, 0 = all (tests)
};

struct ClassifierReport {
  double test_accuracy = 0;
  double train_seconds = 0;
  int epochs = 0;
};

// Trains a classifier on `train` (1x32x32 images, at most 10 classes), measures it on `test` and writes it
// to `output` (safetensors, "ditgen.kind" = "fmnist-classifier"). Deterministic for a seed on the CPU.
// Throws Error(Usage) for bad options, Error(Input) for an unsuitable dataset, Error(Output) when unwritable.
ClassifierReport train_classifier(const data::Dataset& train, const data::Dataset& test,
                                  const ClassifierTrainOptions& options, const std::filesystem::path& output);

// The same on Fashion-MNIST read from options.data_dir (train split for training, test split for the score).
ClassifierReport train_classifier(const ClassifierTrainOptions& options, const std::filesystem::path& output);

// Loads a classifier file onto `device` in eval mode; throws Error(Model) naming the file when it is not
// a classifier or its tensors do not match the architecture.
FmnistClassifier load_classifier(const std::filesystem::path& path, at::Device device);

// Share of `dataset`'s examples whose argmax logit is their label, evaluated in batches on the model's device.
double classifier_accuracy(FmnistClassifier& model, const data::Dataset& dataset, int batch_size = 500);

}  // namespace ditgen::eval
