// Evaluation: the Fréchet distance against closed forms and SciPy, the classifier (shapes, training on a
// synthetic task, file validation) and evaluate() end to end on Fashion-MNIST when the dataset is installed.
#include <cmath>
#include <fstream>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <nlohmann/json.hpp>

#include "catch.h"
#include "ditgen/eval/classifier.h"
#include "ditgen/eval/evaluate.h"
#include "ditgen/eval/fid.h"
#include "ditgen/io/safetensors.h"
#include "ditgen/io/tensor_io.h"
#include "ditgen/data/fashion_mnist.h"
#include "helpers.h"

using namespace ditgen;
using namespace ditgen::eval;
using ditgen::test::error_kind;
using ditgen::test::error_message;

namespace {

at::Tensor f64(std::vector<double> values, std::vector<int64_t> shape) {
  return at::tensor(values, at::kDouble).reshape(shape);
}

// Two classes told apart by where a bright square sits: the left half (0) or the right half (1), on noise.
class BrightSide : public data::Dataset {
 public:
  BrightSide(int64_t n, uint64_t seed) {
    at::Generator gen = at::detail::createCPUGenerator(seed);
    labels_ = at::arange(n, at::kLong).remainder(2);                          // [N]
    images_ = at::randn({n, 1, 32, 32}, gen, at::kFloat) * 0.3 - 0.6;         // [N, 1, 32, 32]
    at::Tensor rows = at::randint(2, 22, {n}, gen, at::kLong);                // [N]
    at::Tensor cols = at::randint(2, 6, {n}, gen, at::kLong) + labels_ * 16;  // [N]
    for (int64_t i = 0; i < n; ++i)
      images_[i].narrow(1, rows[i].item<int64_t>(), 8).narrow(2, cols[i].item<int64_t>(), 8).add_(1.2);
    images_.clamp_(-1, 1);
  }
  int64_t size() const override { return images_.size(0); }
  int channels() const override { return 1; }
  int height() const override { return 32; }
  int width() const override { return 32; }
  const std::vector<std::string>& class_names() const override { return names_; }
  data::Batch get(const std::vector<int64_t>& indices) const override {
    at::Tensor ids = at::tensor(indices, at::kLong);
    return {images_.index_select(0, ids), labels_.index_select(0, ids)};
  }

 private:
  at::Tensor images_, labels_;
  std::vector<std::string> names_{"left", "right"};
};

// Blank images of any shape and class count, for the classifier's dataset checks.
class Blank : public data::Dataset {
 public:
  Blank(int channels, int size, int classes) : channels_(channels), size_(size), names_(classes, "blank") {}
  int64_t size() const override { return 4; }
  int channels() const override { return channels_; }
  int height() const override { return size_; }
  int width() const override { return size_; }
  const std::vector<std::string>& class_names() const override { return names_; }
  data::Batch get(const std::vector<int64_t>& indices) const override {
    const int64_t n = static_cast<int64_t>(indices.size());
    return {at::zeros({n, channels_, size_, size_}), at::zeros({n}, at::kLong)};
  }

 private:
  int channels_, size_;
  std::vector<std::string> names_;
};

// The first n examples of another dataset.
class Prefix : public data::Dataset {
 public:
  Prefix(const data::Dataset& base, int64_t n) : base_(base), n_(std::min(n, base.size())) {}
  int64_t size() const override { return n_; }
  int channels() const override { return base_.channels(); }
  int height() const override { return base_.height(); }
  int width() const override { return base_.width(); }
  const std::vector<std::string>& class_names() const override { return base_.class_names(); }
  data::Batch get(const std::vector<int64_t>& indices) const override { return base_.get(indices); }

 private:
  const data::Dataset& base_;
  int64_t n_;
};

// Writes `tensors` and `meta` to a file, for corrupting a classifier one thing at a time.
std::filesystem::path write_variant(const test::TempDir& dir, const std::map<std::string, at::Tensor>& tensors,
                                    const io::Metadata& meta) {
  std::vector<std::pair<std::string, at::Tensor>> list(tensors.begin(), tensors.end());
  auto path = dir / "variant.safetensors";
  io::save_tensors(path, list, meta);
  return path;
}

}  // namespace

TEST_CASE("Frechet distance", "[eval]") {
  SECTION("feature statistics are the sample mean and unbiased covariance") {
    Gaussian g = feature_statistics(at::tensor({1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 0.0f}).reshape({3, 2}));
    CHECK(g.mean.scalar_type() == at::kDouble);
    CHECK(test::max_abs_diff(g.mean, f64({3, 2}, {2})) < 1e-12);
    CHECK(test::max_abs_diff(g.cov, f64({4, -2, -2, 4}, {2, 2})) < 1e-12);
  }
  SECTION("identical Gaussians are at distance zero") {
    at::Generator gen = at::detail::createCPUGenerator(1);
    Gaussian g = feature_statistics(at::randn({500, 32}, gen, at::kFloat));
    CHECK(frechet_distance(g, g) == Approx(0).margin(1e-9));
  }
  SECTION("1-D: (m1 - m2)^2 + (s1 - s2)^2") {
    Gaussian a{f64({1.5}, {1}), f64({4.0}, {1, 1})}, b{f64({-0.5}, {1}), f64({0.25}, {1, 1})};
    CHECK(frechet_distance(a, b) == Approx(4.0 + 1.5 * 1.5).epsilon(1e-12));
  }
  SECTION("2-D and 3-D non-diagonal covariances match SciPy") {
    // Constants computed once with NumPy and scipy.linalg.sqrtm(C1 @ C2) in the textbook formula.
    Gaussian a{f64({1, 2}, {2}), f64({2, 0.5, 0.5, 1}, {2, 2})};
    Gaussian b{f64({0, -1}, {2}), f64({1, -0.3, -0.3, 0.5}, {2, 2})};
    CHECK(frechet_distance(a, b) == Approx(10.553301412770546).epsilon(1e-10));
    CHECK(frechet_distance(b, a) == Approx(10.553301412770546).epsilon(1e-10));
    Gaussian c{f64({0.5, -1, 2}, {3}), f64({4, 1, -0.5, 1, 3, 0.8, -0.5, 0.8, 2}, {3, 3})};
    Gaussian d{f64({0, 0, 1}, {3}), f64({1, 0.2, 0.1, 0.2, 2, -0.6, 0.1, -0.6, 1.5}, {3, 3})};
    CHECK(frechet_distance(c, d) == Approx(4.014935090425926).epsilon(1e-10));
    // float32 statistics are promoted, not rejected
    Gaussian c32{c.mean.to(at::kFloat), c.cov.to(at::kFloat)};
    CHECK(frechet_distance(c32, d) == Approx(4.014935090425926).epsilon(1e-6));
  }
  SECTION("near-singular covariances stay finite") {
    at::Generator gen = at::detail::createCPUGenerator(2);
    // 10 samples of 64 features: rank-9 covariances, the small-sample case of a real evaluation
    Gaussian a = feature_statistics(at::randn({10, 64}, gen, at::kFloat));
    Gaussian b = feature_statistics(at::randn({10, 64}, gen, at::kFloat) + 0.1);
    const double d = frechet_distance(a, b);
    CHECK(std::isfinite(d));
    CHECK(d > 0);
    CHECK(frechet_distance(a, a) == Approx(0).margin(1e-6 * a.cov.trace().item<double>()));
    // an all-zero covariance (constant features) and one a rounding error below PSD
    Gaussian zero{f64({1, 1}, {2}), at::zeros({2, 2}, at::kDouble)};
    Gaussian negative{f64({1, 1}, {2}), f64({1e-17, 0, 0, -1e-17}, {2, 2})};
    CHECK(frechet_distance(zero, negative) == Approx(0).margin(1e-12));
    Gaussian unit{f64({0, 1}, {2}), at::eye(2, at::kDouble)};
    CHECK(frechet_distance(zero, unit) == Approx(1.0 + 2.0).epsilon(1e-12));
  }
  SECTION("bad inputs") {
    CHECK(error_kind([] { feature_statistics(at::zeros({1, 4})); }) == ErrorKind::Usage);
    CHECK(error_kind([] { feature_statistics(at::zeros({8})); }) == ErrorKind::Usage);
    CHECK(error_kind([] { feature_statistics(at::full({3, 2}, NAN)); }) == ErrorKind::Runtime);
    Gaussian two{at::zeros({2}, at::kDouble), at::eye(2, at::kDouble)};
    Gaussian three{at::zeros({3}, at::kDouble), at::eye(3, at::kDouble)};
    CHECK(error_kind([&] { frechet_distance(two, three); }) == ErrorKind::Usage);
    Gaussian ragged{at::zeros({2}, at::kDouble), at::eye(3, at::kDouble)};
    CHECK(error_kind([&] { frechet_distance(ragged, ragged); }) == ErrorKind::Usage);
    CHECK(error_kind([&] { frechet_distance(Gaussian{}, two); }) == ErrorKind::Usage);
  }
}

TEST_CASE("Fashion-MNIST classifier shapes and size", "[eval]") {
  FmnistClassifier model;
  model->eval();
  at::NoGradGuard no_grad;
  at::Tensor x = at::rand({3, 1, 32, 32}) * 2 - 1;
  CHECK(model->forward(x).sizes() == at::IntArrayRef({3, 10}));
  at::Tensor f = model->features(x);
  CHECK(f.sizes() == at::IntArrayRef({3, 256}));
  CHECK(f.min().item<float>() >= 0);  // after the activation
  CHECK(test::max_abs_diff(model->classify(f), model->forward(x)) < 1e-6);
  int64_t bytes = 0;
  for (const auto& p : model->parameters()) bytes += p.numel() * 4;
  for (const auto& b : model->buffers()) bytes += b.numel() * 4;
  CHECK(bytes < 2 * 1000 * 1000);
}

TEST_CASE("classifier learns a synthetic task and round-trips through its file", "[eval]") {
  test::TempDir dir;
  const BrightSide train_set(256, 1), test_set(200, 2);
  ClassifierTrainOptions options;
  options.epochs = 2;
  options.batch_size = 32;
  options.seed = 3;
  const auto path = dir / "classifier.safetensors";
  const ClassifierReport report = train_classifier(train_set, test_set, options, path);
  INFO("synthetic test accuracy " << report.test_accuracy << " after " << report.train_seconds << " s");
  CHECK(report.test_accuracy >= 0.95);
  CHECK(report.epochs == 2);
  CHECK(report.train_seconds > 0);

  io::SafetensorsFile file = io::SafetensorsFile::open(path);
  CHECK(file.metadata().at("ditgen.kind") == "fmnist-classifier");
  CHECK(std::stod(file.metadata().at("ditgen.test_accuracy")) == Approx(report.test_accuracy));
  const nlohmann::json training = nlohmann::json::parse(file.metadata().at("ditgen.training"));
  for (const char* key : {"epochs", "batch_size", "lr", "seed", "seconds", "device"}) CHECK(training.contains(key));
  CHECK(training["device"] == "cpu");
  CHECK(training["train_images"] == 256);

  FmnistClassifier loaded = load_classifier(path, at::kCPU);
  CHECK(!loaded->is_training());
  CHECK(classifier_accuracy(loaded, test_set) == Approx(report.test_accuracy));
}

TEST_CASE("classifier training is deterministic for a seed and `limit` takes a prefix", "[eval]") {
  test::TempDir dir;
  const BrightSide train_set(96, 1), test_set(4, 5);
  ClassifierTrainOptions options;
  options.epochs = 1;
  options.batch_size = 16;
  options.limit = 48;
  options.seed = 7;
  train_classifier(train_set, test_set, options, dir / "a.safetensors");
  train_classifier(Prefix(train_set, 48), test_set, options, dir / "b.safetensors");
  auto a = io::load_tensors(dir / "a.safetensors"), b = io::load_tensors(dir / "b.safetensors");
  REQUIRE(a.size() == b.size());
  for (const auto& [name, tensor] : a) CHECK(at::equal(tensor, b.at(name)));
  CHECK(nlohmann::json::parse(io::SafetensorsFile::open(dir / "a.safetensors").metadata().at("ditgen.training"))
            .at("train_images") == 48);
  options.seed = 8;
  train_classifier(train_set, test_set, options, dir / "c.safetensors");
  CHECK(!at::equal(a.at("fc1.weight"), io::load_tensors(dir / "c.safetensors").at("fc1.weight")));
}

TEST_CASE("classifier files that do not match are refused with Error(Model)", "[eval]") {
  test::TempDir dir;
  ClassifierTrainOptions options;
  options.epochs = 1;
  options.batch_size = 8;
  const auto path = dir / "classifier.safetensors";
  train_classifier(BrightSide(8, 1), BrightSide(2, 2), options, path);
  const auto tensors = io::load_tensors(path);
  const io::Metadata meta = io::SafetensorsFile::open(path).metadata();
  auto refused = [&](const std::filesystem::path& p) {
    const std::string message = error_message([&] { load_classifier(p, at::kCPU); });
    INFO(message);
    CHECK(error_kind([&] { load_classifier(p, at::kCPU); }) == ErrorKind::Model);
    CHECK(test::contains(message, p.string()));
  };
  io::Metadata wrong_kind = meta;
  wrong_kind["ditgen.kind"] = "dit";
  refused(write_variant(dir, tensors, wrong_kind));
  io::Metadata no_kind = meta;
  no_kind.erase("ditgen.kind");
  refused(write_variant(dir, tensors, no_kind));
  auto missing = tensors;
  missing.erase("bn2.running_var");
  refused(write_variant(dir, missing, meta));
  auto extra = tensors;
  extra["fc3.weight"] = at::zeros({2});
  refused(write_variant(dir, extra, meta));
  auto reshaped = tensors;
  reshaped["fc2.weight"] = at::zeros({9, 256});
  refused(write_variant(dir, reshaped, meta));
  auto retyped = tensors;
  retyped["fc2.bias"] = retyped["fc2.bias"].to(at::kDouble);
  refused(write_variant(dir, retyped, meta));
  {
    std::ofstream garbage(dir / "garbage.safetensors", std::ios::binary);
    garbage << "not a safetensors file at all";
  }
  refused(dir / "garbage.safetensors");
  refused(dir / "absent.safetensors");
  refused(test::golden("tiny_p2.model.safetensors"));  // a DiT, not a classifier
}

TEST_CASE("classifier training refuses bad options and datasets", "[eval]") {
  test::TempDir dir;
  const BrightSide data(8, 1);
  const auto out = dir / "x.safetensors";
  ClassifierTrainOptions bad;
  bad.epochs = 0;
  CHECK(error_kind([&] { train_classifier(data, data, bad, out); }) == ErrorKind::Usage);
  bad = {};
  bad.batch_size = 0;
  CHECK(error_kind([&] { train_classifier(data, data, bad, out); }) == ErrorKind::Usage);
  bad = {};
  bad.lr = 0;
  CHECK(error_kind([&] { train_classifier(data, data, bad, out); }) == ErrorKind::Usage);
  bad = {};
  bad.limit = -1;
  CHECK(error_kind([&] { train_classifier(data, data, bad, out); }) == ErrorKind::Usage);
  const ClassifierTrainOptions good;
  for (const Blank& wrong : {Blank(1, 16, 2), Blank(3, 32, 2), Blank(1, 32, 11)}) {
    CHECK(error_kind([&] { train_classifier(wrong, data, good, out); }) == ErrorKind::Input);
    CHECK(error_kind([&] { train_classifier(data, wrong, good, out); }) == ErrorKind::Input);
  }
  // refused before the training, not after
  CHECK(error_kind([&] { train_classifier(data, data, good, dir / "no" / "such" / "x"); }) == ErrorKind::Output);
  CHECK(dir.listing().empty());
  ClassifierTrainOptions no_data;
  no_data.data_dir = dir / "no-such-dataset";
  CHECK(error_kind([&] { train_classifier(no_data, out); }) == ErrorKind::Input);
}

TEST_CASE("evaluate() scores a Fashion-MNIST model", "[eval]") {
  const std::filesystem::path repo = std::filesystem::path(DITGEN_TEST_DATA).parent_path().parent_path();
  ModelInfo info = model_spec((repo / "configs/models/fmnist-tiny.yaml").string());
  at::manual_seed(0);
  DiT model(info.config);
  model->initialize_weights();
  Generator generator(LoadedModel{model, info}, at::kCPU, at::kFloat);

  SECTION("a model that is not 1x32x32 with 10 classes is refused") {
    Generator other(test::golden("tiny_p4_rect.model.safetensors"), at::kCPU, at::kFloat);
    EvalOptions options;
    options.classifier = "unused.safetensors";
    CHECK(error_kind([&] { evaluate(other, options); }) == ErrorKind::Usage);
  }
  SECTION("bad options") {
    EvalOptions options;
    options.classifier = "unused.safetensors";
    options.num_samples = 1;
    CHECK(error_kind([&] { evaluate(generator, options); }) == ErrorKind::Usage);
    options.num_samples = 10;
    options.sampler = "no-such-sampler";
    CHECK(error_kind([&] { evaluate(generator, options); }) == ErrorKind::Usage);
    options.sampler = "";
    options.classifier = "";
    CHECK(error_kind([&] { evaluate(generator, options); }) == ErrorKind::Usage);
    options.classifier = "/no/such/classifier.safetensors";
    CHECK(error_kind([&] { evaluate(generator, options); }) == ErrorKind::Model);
  }
  SECTION("end to end on the real dataset") {
    const std::filesystem::path fmnist_dir = data::default_fashion_mnist_dir();
    if (!std::filesystem::exists(fmnist_dir)) {
      WARN("skipped: no Fashion-MNIST at " << fmnist_dir);
      return;
    }
    test::TempDir dir;
    const data::FashionMnist train_set(fmnist_dir, data::Split::Train), test_set(fmnist_dir, data::Split::Test);
    ClassifierTrainOptions copts;
    copts.epochs = 1;
    copts.batch_size = 64;
    copts.limit = 2000;
    const ClassifierReport creport =
        train_classifier(train_set, Prefix(test_set, 1000), copts, dir / "classifier.safetensors");
    INFO("classifier after 1 epoch on 2000 images: " << creport.test_accuracy << " in " << creport.train_seconds
                                                     << " s");
    CHECK(creport.test_accuracy > 0.5);

    EvalOptions options;
    options.num_samples = 20;
    options.steps = 2;
    options.batch_size = 8;
    options.data_dir = fmnist_dir;
    options.classifier = dir / "classifier.safetensors";
    std::vector<std::pair<int, int>> generated, classified;  // (images done, of) at each batch's end
    const EvalReport report = evaluate(generator, options, [&](EvalStage stage, const Progress& p) {
      if (stage == EvalStage::Generating && p.step == p.steps) generated.emplace_back(p.images_done, p.images_total);
      if (stage == EvalStage::Features) classified.emplace_back(p.images_done, p.images_total);
    });
    INFO("fid " << report.fid << ", real-vs-real " << report.real_vs_real_fid << ", accuracy "
                << report.class_accuracy << ", " << report.images_per_second << " img/s");
    CHECK(generated == std::vector<std::pair<int, int>>{{8, 20}, {16, 20}, {20, 20}});
    // The 20 generated images, then 20 real ones of each split, in batches of 8; a call as the stage begins.
    CHECK(classified == std::vector<std::pair<int, int>>{
                            {0, 60}, {8, 60}, {16, 60}, {20, 60}, {28, 60}, {36, 60}, {40, 60}, {48, 60}, {56, 60}, {60, 60}});
    for (double v : {report.fid, report.class_accuracy, report.real_vs_real_fid, report.gflops_per_image,
                     report.wall_seconds, report.images_per_second, report.cfg_scale})
      CHECK(std::isfinite(v));
    CHECK(report.class_accuracy >= 0);
    CHECK(report.class_accuracy <= 1);
    CHECK(report.real_vs_real_fid >= 0);
    CHECK(report.fid > report.real_vs_real_fid);
    CHECK(report.gflops_per_image == Approx(generator.gflops_per_image([] {
                                              GenerationRequest r;
                                              r.sampler = {"ddim", 2, 0.0};
                                              r.guidance = {4.0, 0};
                                              return r;
                                            }())));
    CHECK(report.wall_seconds > 0);
    CHECK(report.num_samples == 20);
    CHECK(report.steps == 2);
    CHECK(report.cfg_scale == 4.0);
    CHECK(report.sampler == "ddim");
    const nlohmann::json j = report.to_json();
    for (const char* key : {"fid", "class_accuracy", "real_vs_real_fid", "gflops_per_image", "wall_seconds",
                            "images_per_second", "num_samples", "steps", "cfg_scale", "sampler", "schedule", "seed"})
      CHECK(j.contains(key));
    CHECK(j.size() == 12);
    CHECK(j["schedule"] == "dense");
    CHECK(j["sampler"] == "ddim");

    // Same options, same numbers (seeded generation and real-vs-real subset); another seed, another subset.
    const EvalReport again = evaluate(generator, options);
    CHECK(again.fid == Approx(report.fid).epsilon(1e-6));
    CHECK(again.real_vs_real_fid == Approx(report.real_vs_real_fid).epsilon(1e-6));
  }
}
