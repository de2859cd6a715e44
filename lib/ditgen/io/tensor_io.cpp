#include "ditgen/io/tensor_io.h"

#include <cstring>
#include <set>

#include <torch/csrc/autograd/grad_mode.h>

namespace ditgen::io {

at::ScalarType to_scalar_type(DType dtype) {
  switch (dtype) {
    case DType::F64: return at::kDouble;
    case DType::F32: return at::kFloat;
    case DType::F16: return at::kHalf;
    case DType::BF16: return at::kBFloat16;
    case DType::I8: return at::kChar;
    case DType::U8: return at::kByte;
    case DType::I32: return at::kInt;
    case DType::I64: return at::kLong;
    case DType::BOOL: return at::kBool;
  }
  throw Error(ErrorKind::Runtime, "unhandled dtype");
}

DType to_dtype(at::ScalarType type) {
  switch (type) {
    case at::kDouble: return DType::F64;
    case at::kFloat: return DType::F32;
    case at::kHalf: return DType::F16;
    case at::kBFloat16: return DType::BF16;
    case at::kChar: return DType::I8;
    case at::kByte: return DType::U8;
    case at::kInt: return DType::I32;
    case at::kLong: return DType::I64;
    case at::kBool: return DType::BOOL;
    default: throw Error(ErrorKind::Usage, std::string("cannot store tensors of type ") + c10::toString(type));
  }
}

bool is_weight_float(DType dtype) { return dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16; }

at::Tensor to_tensor(const TensorView& view) {
  at::Tensor t = at::empty(view.shape, at::TensorOptions().dtype(to_scalar_type(view.dtype)));
  if (view.nbytes) std::memcpy(t.data_ptr(), view.data, view.nbytes);
  return t;
}

std::map<std::string, at::Tensor> load_tensors(const std::filesystem::path& path, ErrorKind failure_kind,
                                               std::size_t max_bytes) {
  SafetensorsFile file = SafetensorsFile::open(path, failure_kind);
  std::size_t total = 0;  // cannot overflow: the views lie in one mapped file without overlaps
  for (const TensorView& view : file.tensors()) total += view.nbytes;
  if (total > max_bytes)
    throw Error(failure_kind, path.string() + ": its tensors hold " + std::to_string(total) + " bytes, more than the " +
                                  std::to_string(max_bytes) + " expected");
  std::map<std::string, at::Tensor> out;
  for (const TensorView& view : file.tensors()) out.emplace(view.name, to_tensor(view));
  return out;
}

void save_tensors(const std::filesystem::path& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                  const Metadata& metadata) {
  std::vector<at::Tensor> keep;  // owns the CPU copies the spans point into
  std::vector<TensorData> data;
  keep.reserve(tensors.size());
  for (const auto& [name, tensor] : tensors) {
    keep.push_back(tensor.detach().to(at::kCPU).contiguous());
    const at::Tensor& t = keep.back();
    data.push_back({name, to_dtype(t.scalar_type()), t.sizes().vec(),
                    {static_cast<const std::byte*>(t.data_ptr()), t.nbytes()}});
  }
  write_safetensors(path, data, metadata);
}

void require_parameter_bytes(const SafetensorsFile& file, int64_t parameters) {
  uint64_t stored = 0;
  for (const TensorView& view : file.tensors()) stored += view.nbytes;
  if (static_cast<double>(parameters) * 2 > static_cast<double>(stored))
    throw Error(ErrorKind::Model, file.path().string() + ": its config declares " + std::to_string(parameters) +
                                      " parameters but the file holds only " + std::to_string(stored) +
                                      " bytes of tensors");
}

void load_parameters(torch::nn::Module& module, const SafetensorsFile& file,
                     const std::function<const TensorView*(const std::string&)>& find,
                     const std::function<bool(const std::string&)>& ignored) {
  const std::string where = file.path().string();
  torch::NoGradGuard no_grad;
  std::set<std::string> taken;
  std::string missing;
  for (auto& item : module.named_parameters()) {
    const TensorView* view = find(item.key());
    if (!view) {
      missing += (missing.empty() ? "" : ", ") + item.key();
      continue;
    }
    if (!is_weight_float(view->dtype))
      throw Error(ErrorKind::Model, where + ": tensor '" + view->name + "' has dtype " +
                                        std::string(dtype_name(view->dtype)) + "; weights must be F32, F16 or BF16");
    if (at::IntArrayRef(view->shape) != item.value().sizes())
      throw Error(ErrorKind::Model, where + ": tensor '" + view->name + "' has shape " +
                                        c10::str(at::IntArrayRef(view->shape)) + " but the config needs " +
                                        c10::str(item.value().sizes()));
    item.value().copy_(to_tensor(*view));
    taken.insert(view->name);
  }
  if (!missing.empty()) throw Error(ErrorKind::Model, where + ": missing tensors: " + missing);
  for (const TensorView& view : file.tensors())
    if (!taken.count(view.name) && !ignored(view.name))
      throw Error(ErrorKind::Model, where + ": unexpected tensor '" + view.name + "' (does the config match?)");
}

}  // namespace ditgen::io
