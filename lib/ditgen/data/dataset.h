// Datasets for training and evaluation: indexed examples batched into tensors.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>

namespace ditgen::data {

struct Batch {
  at::Tensor images;  // [B, C, H, W] float32 in [-1, 1], CPU; clips [B, C, F, H, W] (frames() > 1)
  at::Tensor labels;  // [B] int64
  std::vector<std::string> captions = {};  // one per image for captioned data (scenes), else empty
};

// A finite, indexable set of labelled images. Scene datasets (data/scenes.h) implement it too, and caption
// their images; motion datasets (later) will.
class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  virtual int channels() const = 0;
  virtual int height() const = 0;
  virtual int width() const = 0;
  virtual int frames() const { return 1; }  // a clip's frames; 1 for images
  virtual const std::vector<std::string>& class_names() const = 0;
  // The examples at `indices` (each in 0..size()-1) as one batch.
  virtual Batch get(const std::vector<int64_t>& indices) const = 0;
};

}  // namespace ditgen::data
