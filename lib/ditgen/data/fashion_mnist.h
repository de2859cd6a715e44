// Fashion-MNIST (Debian's dataset-fashion-mnist): strict IDX readers and an in-memory Dataset.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "ditgen/data/dataset.h"

namespace ditgen::data {

enum class Split { Train, Test };

struct IdxImages {
  int64_t count = 0;
  int rows = 0;
  int cols = 0;
  std::vector<uint8_t> pixels;  // count * rows * cols bytes, image-major then row-major
};

// Reads an IDX3 image file (magic 0x00000803), gzip-compressed or not; gzip needs a zlib build.
// Throws Error(Input) naming the file when it is missing, malformed, truncated, too long or corrupt.
IdxImages read_idx_images(const std::filesystem::path& path);

// Reads an IDX1 label file (magic 0x00000801), gzip-compressed or not; same checks as read_idx_images.
std::vector<uint8_t> read_idx_labels(const std::filesystem::path& path);

// $DITGEN_FMNIST_DIR when set, else where Debian installs the dataset (/usr/share/datasets/fashion-mnist).
std::filesystem::path default_fashion_mnist_dir();

// The ten class names, in label order ("T-shirt/top" .. "Ankle boot").
const std::vector<std::string>& fashion_mnist_class_names();

// One split held in memory as uint8; examples come out as float32 in [-1, 1], padded with background.
class FashionMnist : public Dataset {
 public:
  // Loads {train|t10k}-{images-idx3|labels-idx1}-ubyte[.gz] from `dir` (the .gz name wins when both exist).
  // Throws Error(Input) for missing or malformed files, Error(Usage) for pad_to outside 28..1024.
  FashionMnist(const std::filesystem::path& dir, Split split, int pad_to = 32);

  int64_t size() const override;
  int channels() const override { return 1; }
  int height() const override { return pad_to_; }
  int width() const override { return pad_to_; }
  const std::vector<std::string>& class_names() const override;
  // Images [B, 1, pad, pad] float32 and labels [B] int64; Error(Usage) for an index outside 0..size()-1.
  Batch get(const std::vector<int64_t>& indices) const override;

  // Every image, padded and scaled like get(): [N, 1, pad, pad] float32 (FID reference features).
  at::Tensor all_images() const;
  // Every label: [N] int64.
  at::Tensor all_labels() const { return labels_; }

 private:
  at::Tensor prepare(const at::Tensor& raw) const;  // uint8 [B, 1, 28, 28] -> float32 [B, 1, pad, pad]

  int pad_to_;
  at::Tensor images_;  // [N, 1, 28, 28] uint8, CPU
  at::Tensor labels_;  // [N] int64, CPU
};

}  // namespace ditgen::data
