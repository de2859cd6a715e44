// at::Tensor <-> safetensors: the bridge between the torch-free file layer and the models.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include "ditgen/io/safetensors.h"

namespace ditgen::io {

at::ScalarType to_scalar_type(DType dtype);
// Throws Error(Usage) for a scalar type safetensors cannot hold here (complex, fp8, ...).
DType to_dtype(at::ScalarType type);

// A CPU tensor holding a copy of the view's bytes.
at::Tensor to_tensor(const TensorView& view);

// Reads every tensor of a file (copies); failures throw Error(failure_kind), as does a file whose tensors
// hold more than `max_bytes` in all (checked before anything is copied).
std::map<std::string, at::Tensor> load_tensors(const std::filesystem::path& path,
                                               ErrorKind failure_kind = ErrorKind::Input,
                                               std::size_t max_bytes = SIZE_MAX);

// Writes named tensors (any device; copied to contiguous CPU memory) atomically.
void save_tensors(const std::filesystem::path& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                  const Metadata& metadata = {});

}  // namespace ditgen::io
