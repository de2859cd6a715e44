#include "ditgen/eval/classifier.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numbers>
#include <set>
#include <string>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <ATen/TensorIndexing.h>
#include <c10/core/GradMode.h>
#include <nlohmann/json.hpp>
#include <torch/nn/functional/loss.h>
#include <torch/optim/adamw.h>

#include "ditgen/core/error.h"
#include "ditgen/io/atomic_file.h"
#include "ditgen/io/safetensors.h"
#include "ditgen/io/tensor_io.h"
#include "ditgen/data/fashion_mnist.h"

namespace ditgen::eval {

namespace {

constexpr const char* kKindKey = "ditgen.kind";
constexpr const char* kKind = "fmnist-classifier";
constexpr int kSize = 32;
constexpr int kMaxShift = 2;  // pixels; Fashion-MNIST items are centred, so small shifts are label-preserving

torch::nn::Conv2d conv3x3(int in, int out) {
  // No bias: the BatchNorm that follows has its own.
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).padding(1).bias(false));
}

void check_dataset(const data::Dataset& d, const char* which) {
  if (d.size() <= 0) throw Error(ErrorKind::Input, std::string("the ") + which + " dataset is empty");
  if (d.channels() != 1 || d.height() != kSize || d.width() != kSize)
    throw Error(ErrorKind::Input, std::string("the classifier needs 1x32x32 images; the ") + which + " dataset has " +
                                      std::to_string(d.channels()) + "x" + std::to_string(d.height()) + "x" +
                                      std::to_string(d.width()));
  if (d.class_names().size() > static_cast<size_t>(FmnistClassifierImpl::kClasses))
    throw Error(ErrorKind::Input, std::string("the classifier has 10 classes; the ") + which + " dataset has " +
                                      std::to_string(d.class_names().size()));
}

void check_labels(const at::Tensor& labels) {
  if (labels.numel() && (labels.min().item<int64_t>() < 0 ||
                         labels.max().item<int64_t>() >= FmnistClassifierImpl::kClasses))
    throw Error(ErrorKind::Input, "dataset labels must lie in 0..9");
}

// Shifts every image by its own random offset of up to kMaxShift pixels, filling with the background (-1).
at::Tensor random_shift(const at::Tensor& images, at::Generator& gen) {
  const int64_t B = images.size(0), H = images.size(2), W = images.size(3);
  at::Tensor padded = at::constant_pad_nd(images, {kMaxShift, kMaxShift, kMaxShift, kMaxShift}, -1.0)
                          .permute({0, 2, 3, 1});                                 // [B, H+4, W+4, C]
  at::Tensor offsets = at::randint(0, 2 * kMaxShift + 1, {B, 2}, gen, at::kLong);  // [B, 2]: row, column
  at::Tensor rows = offsets.select(1, 0).view({B, 1, 1}) + at::arange(H).view({1, H, 1});  // [B, H, 1]
  at::Tensor cols = offsets.select(1, 1).view({B, 1, 1}) + at::arange(W).view({1, 1, W});  // [B, 1, W]
  at::Tensor batch = at::arange(B).view({B, 1, 1});                                        // [B, 1, 1]
  return padded.index({batch, rows, cols}).permute({0, 3, 1, 2}).contiguous();              // [B, C, H, W]
}

at::Device model_device(FmnistClassifier& model) { return model->parameters().front().device(); }

}  // namespace

FmnistClassifierImpl::FmnistClassifierImpl() {
  conv1 = register_module("conv1", conv3x3(1, 32));
  bn1 = register_module("bn1", torch::nn::BatchNorm2d(32));
  conv2 = register_module("conv2", conv3x3(32, 64));
  bn2 = register_module("bn2", torch::nn::BatchNorm2d(64));
  conv3 = register_module("conv3", conv3x3(64, 128));
  bn3 = register_module("bn3", torch::nn::BatchNorm2d(128));
  conv4 = register_module("conv4", conv3x3(128, 64));
  bn4 = register_module("bn4", torch::nn::BatchNorm2d(64));
  fc1 = register_module("fc1", torch::nn::Linear(64 * 4 * 4, kFeatures));
  fc2 = register_module("fc2", torch::nn::Linear(kFeatures, kClasses));
}

at::Tensor FmnistClassifierImpl::features(const at::Tensor& x) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == 1 && x.size(2) == kSize && x.size(3) == kSize,
              "the classifier expects [B, 1, 32, 32], got ", x.sizes());
  at::Tensor h = at::relu(bn1->forward(conv1->forward(x)));  // [B, 32, 32, 32]
  h = at::max_pool2d(h, 2);                                  // [B, 32, 16, 16]
  h = at::relu(bn2->forward(conv2->forward(h)));             // [B, 64, 16, 16]
  h = at::relu(bn3->forward(conv3->forward(h)));             // [B, 128, 16, 16]
  h = at::max_pool2d(h, 2);                                  // [B, 128, 8, 8]
  h = at::relu(bn4->forward(conv4->forward(h)));             // [B, 64, 8, 8]
  h = at::max_pool2d(h, 2);                                  // [B, 64, 4, 4]
  return at::relu(fc1->forward(h.flatten(1)));               // [B, 256]
}

at::Tensor FmnistClassifierImpl::classify(const at::Tensor& f) {
  return fc2->forward(f);  // [B, 10]
}

at::Tensor FmnistClassifierImpl::forward(const at::Tensor& x) {
  return classify(features(x));  // [B, 10]
}

double classifier_accuracy(FmnistClassifier& model, const data::Dataset& dataset, int batch_size) {
  c10::InferenceMode inference;
  const at::Device device = model_device(model);
  int64_t correct = 0;
  for (int64_t begin = 0; begin < dataset.size(); begin += batch_size) {
    std::vector<int64_t> indices(static_cast<size_t>(std::min<int64_t>(batch_size, dataset.size() - begin)));
    for (size_t i = 0; i < indices.size(); ++i) indices[i] = begin + static_cast<int64_t>(i);
    data::Batch batch = dataset.get(indices);
    at::Tensor predicted = model->forward(batch.images.to(device)).argmax(1).cpu();  // [b]
    correct += predicted.eq(batch.labels).sum().item<int64_t>();
  }
  return static_cast<double>(correct) / static_cast<double>(dataset.size());
}

ClassifierReport train_classifier(const data::Dataset& train_set, const data::Dataset& test_set,
                                  const ClassifierTrainOptions& o, const std::filesystem::path& output) {
  if (o.epochs < 1) throw Error(ErrorKind::Usage, "classifier epochs must be >= 1");
  if (o.batch_size < 1) throw Error(ErrorKind::Usage, "classifier batch size must be >= 1");
  if (!(o.lr > 0) || !std::isfinite(o.lr)) throw Error(ErrorKind::Usage, "classifier learning rate must be > 0");
  if (o.limit < 0) throw Error(ErrorKind::Usage, "classifier image limit must be >= 0");
  check_dataset(train_set, "training");
  check_dataset(test_set, "test");
  const int64_t n = o.limit > 0 ? std::min(o.limit, train_set.size()) : train_set.size();
  { io::AtomicFile probe(output); }  // an unwritable output fails now, not after the training

  at::manual_seed(o.seed);  // the initial weights
  FmnistClassifier model;
  model->to(o.device);
  at::Generator gen = at::detail::createCPUGenerator(o.seed);  // shuffling and shifts, independent of the device
  torch::optim::AdamW optimizer(model->parameters(), torch::optim::AdamWOptions(o.lr));
  auto& group_options = static_cast<torch::optim::AdamWOptions&>(optimizer.param_groups().front().options());
  const int64_t steps_per_epoch = (n + o.batch_size - 1) / o.batch_size;
  const int64_t total_steps = steps_per_epoch * o.epochs;

  const auto start = std::chrono::steady_clock::now();
  model->train();
  int64_t step = 0;
  at::Tensor loss;
  for (int epoch = 0; epoch < o.epochs; ++epoch) {
    at::Tensor order = at::randperm(n, gen, at::kLong);  // [n]
    const int64_t* ids = order.data_ptr<int64_t>();
    for (int64_t begin = 0; begin < n; begin += o.batch_size, ++step) {
      const std::vector<int64_t> indices(ids + begin, ids + std::min<int64_t>(n, begin + o.batch_size));
      data::Batch batch = train_set.get(indices);
      check_labels(batch.labels);
      at::Tensor x = random_shift(batch.images, gen).to(o.device);  // [b, 1, 32, 32]
      at::Tensor y = batch.labels.to(o.device);                      // [b]
      // Cosine decay to zero: the last epochs settle instead of bouncing at the full rate.
      group_options.lr(o.lr * 0.5 * (1 + std::cos(std::numbers::pi * static_cast<double>(step) / total_steps)));
      loss = torch::nn::functional::cross_entropy(model->forward(x), y);  // []
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
    }
  }
  model->eval();
  const double final_loss = loss.item<double>();  // reading it back also waits for an asynchronous device
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  const double accuracy = classifier_accuracy(model, test_set);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& item : model->named_parameters()) tensors.emplace_back(item.key(), item.value().detach());
  for (const auto& item : model->named_buffers()) tensors.emplace_back(item.key(), item.value().detach());
  const nlohmann::json training = {{"epochs", o.epochs},   {"batch_size", o.batch_size}, {"lr", o.lr},
                                   {"seed", o.seed},       {"seconds", seconds},         {"device", o.device.str()},
                                   {"train_images", n},    {"test_images", test_set.size()}, {"final_loss", final_loss}};
  io::save_tensors(output, tensors,
                   {{kKindKey, kKind},
                    {"ditgen.test_accuracy", nlohmann::json(accuracy).dump()},
                    {"ditgen.training", training.dump()}});
  return {accuracy, seconds, o.epochs};
}

ClassifierReport train_classifier(const ClassifierTrainOptions& options, const std::filesystem::path& output) {
  const std::filesystem::path dir = options.data_dir.empty() ? data::default_fashion_mnist_dir() : options.data_dir;
  const data::FashionMnist train_set(dir, data::Split::Train), test_set(dir, data::Split::Test);
  return train_classifier(train_set, test_set, options, output);
}

FmnistClassifier load_classifier(const std::filesystem::path& path, at::Device device) {
  io::SafetensorsFile file = io::SafetensorsFile::open(path, ErrorKind::Model);
  const std::string where = path.string();
  auto kind = file.metadata().find(kKindKey);
  if (kind == file.metadata().end() || kind->second != kKind)
    throw Error(ErrorKind::Model, where + ": not a Fashion-MNIST classifier (metadata '" + kKindKey + "' is " +
                                      (kind == file.metadata().end() ? "missing" : "'" + kind->second + "'") + ")");

  FmnistClassifier model;
  torch::NoGradGuard no_grad;
  std::set<std::string> expected;
  std::string missing;
  auto load = [&](const std::string& name, at::Tensor& target) {
    expected.insert(name);
    const io::TensorView* view = file.find(name);
    if (!view) {
      missing += (missing.empty() ? "" : ", ") + name;
      return;
    }
    if (view->dtype != io::to_dtype(target.scalar_type()))
      throw Error(ErrorKind::Model, where + ": tensor '" + name + "' has dtype " +
                                        std::string(io::dtype_name(view->dtype)) + ", expected " +
                                        std::string(io::dtype_name(io::to_dtype(target.scalar_type()))));
    if (at::IntArrayRef(view->shape) != target.sizes())
      throw Error(ErrorKind::Model, where + ": tensor '" + name + "' has shape " +
                                        c10::str(at::IntArrayRef(view->shape)) + ", expected " +
                                        c10::str(target.sizes()));
    target.copy_(io::to_tensor(*view));
  };
  for (auto& item : model->named_parameters()) load(item.key(), item.value());
  for (auto& item : model->named_buffers()) load(item.key(), item.value());
  if (!missing.empty()) throw Error(ErrorKind::Model, where + ": missing tensors: " + missing);
  for (const io::TensorView& view : file.tensors())
    if (!expected.count(view.name)) throw Error(ErrorKind::Model, where + ": unexpected tensor '" + view.name + "'");
  model->to(device);
  model->eval();
  return model;
}

}  // namespace ditgen::eval
