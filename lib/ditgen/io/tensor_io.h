// at::Tensor <-> safetensors: the bridge between the torch-free file layer and the models.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include "ditgen/io/safetensors.h"

namespace ditgen::io {

at::ScalarType to_scalar_type(DType dtype);
// Throws Error(Usage) for a scalar type safetensors cannot hold here (complex, fp8, ...).
DType to_dtype(at::ScalarType type);
// Whether float weights may be stored in `dtype`: F32, F16 or BF16.
bool is_weight_float(DType dtype);

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

// Error(Model) naming the file unless its tensors hold at least 2 bytes (the narrowest weight dtype) for each
// of the `parameters` a config declares: checked before the module is allocated, so a small file cannot ask for
// a huge one.
void require_parameter_bytes(const SafetensorsFile& file, int64_t parameters);

// Copies every parameter of `module` from the file's tensor `find` gives for its name (nullptr: none). Error(Model)
// naming the file and the tensor for a missing one, a dtype other than F32, F16 or BF16, another shape, or a
// tensor of the file no parameter took that `ignored` does not excuse.
void load_parameters(torch::nn::Module& module, const SafetensorsFile& file,
                     const std::function<const TensorView*(const std::string&)>& find,
                     const std::function<bool(const std::string&)>& ignored);

}  // namespace ditgen::io
