#include "ditgen/io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <limits>
#include <set>
#include <tuple>

#include <nlohmann/json.hpp>

#include "ditgen/io/atomic_file.h"
#include "ditgen/io/json_limits.h"
#include "ditgen/io/untrusted_text.h"

namespace ditgen::io {

namespace {

using nlohmann::json;

constexpr std::array kAllDTypes = {DType::F64, DType::F32, DType::F16, DType::BF16, DType::I8,
                                   DType::U8,  DType::I32, DType::I64, DType::BOOL};
constexpr uint64_t kMaxHeaderBytes = uint64_t{100} << 20;  // the reference implementation's limit
constexpr std::size_t kMaxRank = 8;                         // far above any DiT weight; bounds hostile headers
constexpr std::string_view kMetadataKey = "__metadata__";

// Names come from untrusted files: quoted short, control bytes escaped, so a message stays one sane line.
std::string quote_name(std::string_view name) { return "'" + excerpt(name, 200) + "'"; }

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

std::string range_string(uint64_t begin, uint64_t end) {
  return "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "]";
}

// dtype_size x prod(shape) for dims >= 0, or nullopt when it does not fit in 64 bits.
std::optional<uint64_t> byte_count(DType dtype, const std::vector<int64_t>& shape) {
  // A zero dimension empties the tensor whatever the others are, so it must win over an overflow.
  if (std::find(shape.begin(), shape.end(), 0) != shape.end()) return 0;
  uint64_t count = dtype_size(dtype);
  for (int64_t dim : shape)
    if (__builtin_mul_overflow(count, static_cast<uint64_t>(dim), &count)) return std::nullopt;
  return count;
}

// Builds the errors of one file: "PATH: what" or "PATH: tensor 'NAME': what".
struct Reject {
  std::string where;
  ErrorKind kind;
  Error operator()(const std::string& what) const { return Error(kind, where + ": " + what); }
  Error tensor(std::string_view name, const std::string& what) const {
    return (*this)("tensor " + quote_name(name) + ": " + what);
  }
};

struct Entry {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin;
  uint64_t end;
};

// Parses the header, refusing duplicate keys at any level: nlohmann silently keeps the last one,
// which would let two readers of one file disagree about a tensor.
json parse_header(std::string_view text, const Reject& reject) {
  std::vector<std::set<std::string>> open_objects;  // keys seen so far in each object being parsed
  std::string top_key;                              // tensor (or __metadata__) whose value is being parsed
  std::optional<std::string> duplicate;
  json::parser_callback_t track = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      open_objects.pop_back();
    } else if (event == json::parse_event_t::key) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (open_objects.size() == 1) top_key = key;
      if (!open_objects.back().insert(key).second && !duplicate) {
        if (open_objects.size() > 1)
          duplicate = (top_key == kMetadataKey ? std::string(kMetadataKey) : "tensor " + quote_name(top_key)) +
                      ": duplicate key " + quote_name(key);
        else
          duplicate = key == kMetadataKey ? "duplicate __metadata__" : "duplicate tensor name " + quote_name(key);
      }
    }
    return true;
  };
  json root = parse_json(text, reject.kind, reject.where + ": header", track);
  if (duplicate) throw reject(*duplicate);
  if (!root.is_object()) throw reject("header is not a JSON object");
  return root;
}

Metadata parse_metadata(const json& value, const Reject& reject) {
  if (!value.is_object()) throw reject("__metadata__ is not a JSON object");
  Metadata metadata;
  for (const auto& [key, item] : value.items()) {
    if (!item.is_string()) throw reject("__metadata__ value of " + quote_name(key) + " is not a string");
    metadata.emplace(key, item.get<std::string>());
  }
  return metadata;
}

Entry parse_entry(const std::string& name, const json& value, uint64_t data_size, const Reject& reject) {
  auto bad = [&](const std::string& what) { return reject.tensor(name, what); };
  if (name.empty()) throw reject("a tensor has an empty name");
  if (!value.is_object()) throw bad("entry is not a JSON object");
  for (const auto& [key, item] : value.items())
    if (key != "dtype" && key != "shape" && key != "data_offsets") throw bad("unexpected key " + quote_name(key));
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!value.contains(key)) throw bad(std::string("missing \"") + key + "\"");

  const json& dtype_json = value.at("dtype");
  if (!dtype_json.is_string()) throw bad("dtype is not a string");
  std::optional<DType> dtype = parse_dtype(dtype_json.get_ref<const std::string&>());
  if (!dtype) {
    std::string supported;
    for (DType known : kAllDTypes) supported += (supported.empty() ? "" : ", ") + std::string(dtype_name(known));
    const std::string& name_given = dtype_json.get_ref<const std::string&>();
    throw bad("unsupported dtype " + quote_name(name_given) + " (supported: " + supported + ")");
  }

  const json& shape_json = value.at("shape");
  if (!shape_json.is_array()) throw bad("shape is not an array");
  if (shape_json.size() > kMaxRank)
    throw bad("shape has rank " + std::to_string(shape_json.size()) + "; at most " + std::to_string(kMaxRank) +
              " is supported");
  std::vector<int64_t> shape;
  for (const json& dim : shape_json) {
    // nlohmann stores non-negative integer literals as unsigned, negative ones as signed, others as float.
    if (dim.is_number_unsigned()) {
      auto size = dim.get<uint64_t>();
      if (size > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        throw bad("shape dimension " + std::to_string(size) + " is too large");
      shape.push_back(static_cast<int64_t>(size));
    } else if (dim.is_number_integer()) {
      throw bad("negative dimension " + std::to_string(dim.get<int64_t>()) + " in shape");
    } else {
      throw bad("shape holds a dimension that is not an integer");
    }
  }

  const json& offsets = value.at("data_offsets");
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned())
    throw bad("data_offsets is not a pair of non-negative integers");
  const auto begin = offsets[0].get<uint64_t>();
  const auto end = offsets[1].get<uint64_t>();
  if (begin > end) throw bad(range_string(begin, end) + " run backwards");
  if (end > data_size)
    throw bad(range_string(begin, end) + " exceed the data section of " + std::to_string(data_size) + " bytes");
  const std::string described = std::string(dtype_name(*dtype)) + " " + shape_string(shape);
  std::optional<uint64_t> needed = byte_count(*dtype, shape);
  if (!needed) throw bad(described + " needs more than 2^64 bytes");
  if (*needed != end - begin)
    throw bad(range_string(begin, end) + " hold " + std::to_string(end - begin) + " bytes but " + described +
              " needs " + std::to_string(*needed));
  return {name, *dtype, std::move(shape), begin, end};
}

// Closes a descriptor on every path out of open(); the mapping outlives it.
struct FdGuard {
  int fd;
  ~FdGuard() { ::close(fd); }
};

}  // namespace

std::size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::F32:
    case DType::I32: return 4;
    case DType::F16:
    case DType::BF16: return 2;
    case DType::I8:
    case DType::U8:
    case DType::BOOL: return 1;
    case DType::F64:
    case DType::I64: return 8;
  }
  throw Error(ErrorKind::Usage, "invalid DType value " + std::to_string(static_cast<int>(dtype)));
}

std::string_view dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F64: return "F64";
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::I8: return "I8";
    case DType::U8: return "U8";
    case DType::I32: return "I32";
    case DType::I64: return "I64";
    case DType::BOOL: return "BOOL";
  }
  throw Error(ErrorKind::Usage, "invalid DType value " + std::to_string(static_cast<int>(dtype)));
}

std::optional<DType> parse_dtype(std::string_view name) {
  for (DType dtype : kAllDTypes)
    if (dtype_name(dtype) == name) return dtype;
  return std::nullopt;
}

struct SafetensorsFile::Mapping {
  std::filesystem::path path;
  void* base = MAP_FAILED;
  std::size_t size = 0;
  Metadata metadata;
  std::vector<TensorView> tensors;                         // ascending offset
  std::map<std::string, std::size_t, std::less<>> index;  // name -> position in tensors

  Mapping() = default;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() {
    if (base != MAP_FAILED) ::munmap(base, size);
  }
};

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path, ErrorKind failure_kind) {
  const Reject reject{path.string(), failure_kind};
  auto mapping = std::make_shared<Mapping>();
  mapping->path = path;
  {
    // O_NONBLOCK: a FIFO given as a model must fail the regular-file check, not hang open().
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) throw Error(failure_kind, "cannot open " + reject.where + ": " + std::strerror(errno));
    FdGuard guard{fd};
    struct stat st {};
    if (::fstat(fd, &st) != 0) throw Error(failure_kind, "cannot stat " + reject.where + ": " + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) throw reject("not a regular file");
    if (st.st_size < 8)
      throw reject("truncated: " + std::to_string(st.st_size) + " bytes, shorter than the 8-byte header length");
    mapping->size = static_cast<std::size_t>(st.st_size);
    mapping->base = ::mmap(nullptr, mapping->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (mapping->base == MAP_FAILED)
      throw Error(failure_kind, "cannot map " + reject.where + ": " + std::strerror(errno));
  }

  const auto* bytes = static_cast<const std::byte*>(mapping->base);
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = header_size << 8 | std::to_integer<uint64_t>(bytes[i]);
  if (header_size < 2)
    throw reject("header length " + std::to_string(header_size) + " is too short for a JSON object");
  if (header_size > kMaxHeaderBytes)
    throw reject("header length " + std::to_string(header_size) + " exceeds the limit of 100 MiB");
  if (header_size > mapping->size - 8)
    throw reject("truncated: header length " + std::to_string(header_size) + " exceeds the " +
                 std::to_string(mapping->size - 8) + " bytes after the length field");
  const std::byte* data = bytes + 8 + header_size;
  const uint64_t data_size = mapping->size - 8 - header_size;

  json root = parse_header({reinterpret_cast<const char*>(bytes + 8), header_size}, reject);
  std::vector<Entry> entries;
  for (const auto& [key, value] : root.items()) {
    if (key == kMetadataKey)
      mapping->metadata = parse_metadata(value, reject);
    else
      entries.push_back(parse_entry(key, value, data_size, reject));
  }

  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  // Holes between tensors are tolerated; shared bytes are not. Empty tensors own no bytes.
  const Entry* previous = nullptr;  // the non-empty tensor that reaches furthest so far
  for (const Entry& entry : entries) {
    if (entry.begin == entry.end) continue;
    if (previous && entry.begin < previous->end)
      throw reject.tensor(entry.name, range_string(entry.begin, entry.end) + " overlap tensor " +
                                          quote_name(previous->name) + " at " +
                                          range_string(previous->begin, previous->end));
    previous = &entry;
  }

  mapping->tensors.reserve(entries.size());
  for (Entry& entry : entries) {
    mapping->index.emplace(entry.name, mapping->tensors.size());
    mapping->tensors.push_back(
        {std::move(entry.name), entry.dtype, std::move(entry.shape), data + entry.begin, entry.end - entry.begin});
  }
  SafetensorsFile file;
  file.mapping_ = std::move(mapping);
  return file;
}

const std::filesystem::path& SafetensorsFile::path() const { return mapping_->path; }

const Metadata& SafetensorsFile::metadata() const { return mapping_->metadata; }

const std::vector<TensorView>& SafetensorsFile::tensors() const { return mapping_->tensors; }

const TensorView* SafetensorsFile::find(std::string_view name) const {
  auto it = mapping_->index.find(name);
  return it == mapping_->index.end() ? nullptr : &mapping_->tensors[it->second];
}

void write_safetensors(const std::filesystem::path& path, const std::vector<TensorData>& tensors,
                       const Metadata& metadata) {
  const std::string where = path.string();
  auto usage = [&](const std::string& what) { return Error(ErrorKind::Usage, "cannot write " + where + ": " + what); };

  // Name order makes the file independent of the caller's order, so equal contents give equal bytes.
  std::vector<const TensorData*> order;
  order.reserve(tensors.size());
  for (const TensorData& tensor : tensors) order.push_back(&tensor);
  std::sort(order.begin(), order.end(), [](const TensorData* a, const TensorData* b) { return a->name < b->name; });

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header[std::string(kMetadataKey)] = metadata;
  uint64_t offset = 0;
  for (std::size_t i = 0; i < order.size(); ++i) {
    const TensorData& tensor = *order[i];
    auto bad = [&](const std::string& what) { return usage("tensor " + quote_name(tensor.name) + ": " + what); };
    if (tensor.name.empty()) throw usage("a tensor has an empty name");
    if (tensor.name == kMetadataKey) throw bad("the name is reserved for the metadata block");
    if (i > 0 && order[i - 1]->name == tensor.name) throw usage("duplicate tensor name " + quote_name(tensor.name));
    // Write only what open() accepts.
    if (tensor.shape.size() > kMaxRank)
      throw bad("shape has rank " + std::to_string(tensor.shape.size()) + "; at most " + std::to_string(kMaxRank) +
                " is supported");
    if (std::any_of(tensor.shape.begin(), tensor.shape.end(), [](int64_t dim) { return dim < 0; }))
      throw bad("negative dimension in shape " + shape_string(tensor.shape));
    const std::string described = std::string(dtype_name(tensor.dtype)) + " " + shape_string(tensor.shape);
    std::optional<uint64_t> needed = byte_count(tensor.dtype, tensor.shape);
    if (!needed) throw bad(described + " needs more than 2^64 bytes");
    if (*needed != tensor.bytes.size())
      throw bad(std::to_string(tensor.bytes.size()) + " bytes given but " + described + " needs " +
                std::to_string(*needed));
    header[tensor.name] = {{"dtype", std::string(dtype_name(tensor.dtype))},
                           {"shape", tensor.shape},
                           {"data_offsets", nlohmann::ordered_json::array({offset, offset + *needed})}};
    offset += *needed;
  }

  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::ordered_json::type_error&) {
    throw usage("a tensor name or metadata string is not valid UTF-8");
  }
  // Spaces pad the header so the data section starts 8-byte aligned, as the format recommends.
  text.append((8 - text.size() % 8) % 8, ' ');
  if (text.size() > kMaxHeaderBytes) throw usage("the header would exceed the readers' limit of 100 MiB");

  std::array<unsigned char, 8> length{};
  for (std::size_t i = 0; i < length.size(); ++i) length[i] = static_cast<unsigned char>(text.size() >> (8 * i));
  AtomicFile file(path);
  file.write(length.data(), length.size());
  file.write(text.data(), text.size());
  for (const TensorData* tensor : order) file.write(tensor->bytes.data(), tensor->bytes.size());
  file.commit();
}

}  // namespace ditgen::io
