// safetensors files: a memory-mapped, strictly validated reader and an atomic writer.
// Torch-free on purpose: io/tensor_io.h converts views to and from at::Tensor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ditgen/core/error.h"

namespace ditgen::io {

enum class DType { F64, F32, F16, BF16, I8, U8, I32, I64, BOOL };

std::size_t dtype_size(DType dtype);                      // bytes per element
std::string_view dtype_name(DType dtype);                 // "F32", "BF16", ... as in the format
std::optional<DType> parse_dtype(std::string_view name);  // nullopt for names we do not support

// Metadata of the file's "__metadata__" block: string keys to string values.
using Metadata = std::map<std::string, std::string>;

// One tensor inside a mapped file; `data` stays valid while the SafetensorsFile lives.
struct TensorView {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const std::byte* data;
  std::size_t nbytes;
};

class SafetensorsFile {
 public:
  // Maps and validates the whole file: header length bound, well-formed JSON, known dtypes, dims >= 0,
  // dtype x shape = byte count, every range inside the data section, no overlaps.
  // Failures throw Error(failure_kind) naming the file (and the tensor, where one is at fault).
  static SafetensorsFile open(const std::filesystem::path& path, ErrorKind failure_kind = ErrorKind::Input);

  const std::filesystem::path& path() const;
  const Metadata& metadata() const;
  const std::vector<TensorView>& tensors() const;  // in file order (ascending offset)
  const TensorView* find(std::string_view name) const;  // nullptr when absent

 private:
  struct Mapping;
  std::shared_ptr<Mapping> mapping_;
};

// A tensor to write; `bytes` must hold exactly dtype_size(dtype) x prod(shape) bytes.
struct TensorData {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::span<const std::byte> bytes;
};

// Writes a safetensors file atomically (temporary file + rename). Names must be unique and non-empty.
// Throws Error(Usage) for inconsistent tensors, Error(Output) when the file cannot be written.
void write_safetensors(const std::filesystem::path& path, const std::vector<TensorData>& tensors,
                       const Metadata& metadata = {});

}  // namespace ditgen::io
