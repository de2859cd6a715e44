#include "ditgen/data/fashion_mnist.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <system_error>

#ifdef DITGEN_HAVE_ZLIB
#include <zlib.h>
#endif

#include "ditgen/core/error.h"

namespace ditgen::data {

namespace fs = std::filesystem;

namespace {

constexpr uint32_t kImagesMagic = 0x00000803;  // unsigned bytes, 3 dimensions
constexpr uint32_t kLabelsMagic = 0x00000801;  // unsigned bytes, 1 dimension
constexpr uint32_t kMaxCount = 10'000'000;
constexpr uint32_t kMaxSide = 4096;
constexpr int kSide = 28;  // Fashion-MNIST images are 28 x 28
constexpr int kMaxPad = 1024;
constexpr int kNumClasses = 10;
constexpr std::size_t kChunk = std::size_t{1} << 20;         // read granularity; gzread takes an unsigned
constexpr std::size_t kReserveCap = std::size_t{64} << 20;  // holds the train split; hostile headers grow on demand

#ifdef DITGEN_HAVE_ZLIB
constexpr bool kHaveZlib = true;
#else
constexpr bool kHaveZlib = false;
#endif

Error input_error(const fs::path& path, const std::string& what) {
  return Error(ErrorKind::Input, path.string() + ": " + what);
}

// The bytes of one file, through zlib when built with it (gzread passes uncompressed files through).
class ByteSource {
 public:
  explicit ByteSource(const fs::path& path) : path_(path) {
#ifdef DITGEN_HAVE_ZLIB
    file_ = gzopen(path.c_str(), "rb");
    if (!file_) throw input_error(path, std::string("cannot open: ") + std::strerror(errno));
    gzbuffer(file_, 1 << 17);  // the default 8 KiB makes inflating the 26 MB train file needlessly slow
#else
    file_ = std::fopen(path.c_str(), "rb");
    if (!file_) throw input_error(path, std::string("cannot open: ") + std::strerror(errno));
    unsigned char head[2] = {};
    bool gzip = std::fread(head, 1, 2, file_) == 2 && head[0] == 0x1f && head[1] == 0x8b;
    if (gzip || path.extension() == ".gz") {
      std::fclose(file_);
      throw input_error(path, "is gzip-compressed and this ditgen was built without zlib: gunzip it, or "
                              "rebuild with zlib (zlib1g-dev)");
    }
    std::rewind(file_);
#endif
  }
  ~ByteSource() {
#ifdef DITGEN_HAVE_ZLIB
    gzclose(file_);
#else
    std::fclose(file_);
#endif
  }
  ByteSource(const ByteSource&) = delete;
  ByteSource& operator=(const ByteSource&) = delete;

  // Reads up to n bytes (n <= kChunk); fewer only at the end of the data. Throws on I/O errors and on
  // corrupt or cut-off gzip data, so a short count always means a complete stream.
  std::size_t read(uint8_t* out, std::size_t n) {
#ifdef DITGEN_HAVE_ZLIB
    int got = gzread(file_, out, static_cast<unsigned>(n));
    int code = Z_OK;
    std::string message = gzerror(file_, &code);
    // zlib prefixes its messages with the path, which input_error adds already.
    if (const std::string prefix = path_.string() + ": "; message.starts_with(prefix))
      message.erase(0, prefix.size());
    // gzread reports a cut-off stream (Z_BUF_ERROR) only through gzerror, with a short count.
    if (code == Z_ERRNO) throw input_error(path_, "cannot read: " + message);
    if (got < 0 || code != Z_OK) throw input_error(path_, "corrupt gzip data: " + message);
    return static_cast<std::size_t>(got);
#else
    std::size_t got = std::fread(out, 1, n, file_);
    if (std::ferror(file_)) throw input_error(path_, std::string("cannot read: ") + std::strerror(errno));
    return got;
#endif
  }

 private:
  fs::path path_;
#ifdef DITGEN_HAVE_ZLIB
  gzFile file_;
#else
  std::FILE* file_;
#endif
};

// Up to n bytes: stops early only at the end of the data.
std::size_t read_up_to(ByteSource& source, uint8_t* out, std::size_t n) {
  std::size_t total = 0;
  while (total < n) {
    std::size_t got = source.read(out + total, std::min(kChunk, n - total));
    total += got;
    if (got == 0) break;
  }
  return total;
}

struct IdxFile {
  std::vector<uint32_t> dims;
  std::vector<uint8_t> payload;  // exactly prod(dims) bytes
};

// An unsigned-byte IDX file: big-endian magic, one uint32 per dimension, then the payload and nothing after.
// `names` labels each dimension in messages; `payload_name` the payload ("pixels", "labels").
IdxFile read_idx(const fs::path& path, uint32_t magic, const std::vector<std::string>& names,
                 const std::vector<uint32_t>& limits, const std::string& payload_name) {
  ByteSource source(path);
  const std::size_t header_size = 4 * (1 + names.size());
  std::vector<uint8_t> header(header_size);
  std::size_t got = read_up_to(source, header.data(), header_size);
  if (got < header_size)
    throw input_error(path, "header too short: expected " + std::to_string(header_size) + " bytes, found " +
                                std::to_string(got));
  auto word = [&](std::size_t i) {
    const uint8_t* p = header.data() + 4 * i;
    return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | uint32_t{p[3]};
  };
  if (word(0) != magic) {
    char text[80];
    std::snprintf(text, sizeof text, "bad magic 0x%08x (expected 0x%08x)", word(0), magic);
    throw input_error(path, text);
  }

  IdxFile idx;
  uint64_t expected = 1;  // at most 10^7 * 4096^2, far below 2^64
  for (std::size_t i = 0; i < names.size(); ++i) {
    uint32_t dim = word(i + 1);
    if (dim == 0 || dim > limits[i])
      throw input_error(path, names[i] + " " + std::to_string(dim) + " is outside 1.." + std::to_string(limits[i]));
    idx.dims.push_back(dim);
    expected *= dim;
  }

  // Grow with the data actually present, so a header claiming terabytes cannot allocate them up front.
  idx.payload.reserve(static_cast<std::size_t>(std::min<uint64_t>(expected, kReserveCap)));
  while (idx.payload.size() < expected) {
    std::size_t old = idx.payload.size();
    std::size_t want = static_cast<std::size_t>(std::min<uint64_t>(kChunk, expected - old));
    idx.payload.resize(old + want);
    std::size_t n = read_up_to(source, idx.payload.data() + old, want);
    idx.payload.resize(old + n);
    if (n < want) break;
  }
  if (idx.payload.size() < expected)
    throw input_error(path, "truncated: expected " + std::to_string(expected) + " bytes of " + payload_name +
                                ", found " + std::to_string(idx.payload.size()));
  uint8_t extra = 0;
  if (read_up_to(source, &extra, 1) != 0)
    throw input_error(path, "unexpected data after the " + std::to_string(expected) + " bytes of " + payload_name);
  return idx;
}

// `dir/name.gz` when it exists and zlib can read it, else `dir/name`; refuses when neither exists.
fs::path pick_file(const fs::path& dir, const std::string& name) {
  const fs::path gz = dir / (name + ".gz");
  const fs::path plain = dir / name;
  std::error_code ec;
  for (const fs::path& candidate : kHaveZlib ? std::vector{gz, plain} : std::vector{plain, gz})
    if (fs::exists(candidate, ec)) return candidate;
  throw input_error(gz, "no such file (nor " + plain.string() +
                            "); install dataset-fashion-mnist or set DITGEN_FMNIST_DIR");
}

}  // namespace

IdxImages read_idx_images(const fs::path& path) {
  IdxFile idx = read_idx(path, kImagesMagic, {"image count", "rows", "cols"}, {kMaxCount, kMaxSide, kMaxSide},
                         "pixels");
  return {idx.dims[0], static_cast<int>(idx.dims[1]), static_cast<int>(idx.dims[2]), std::move(idx.payload)};
}

std::vector<uint8_t> read_idx_labels(const fs::path& path) {
  return read_idx(path, kLabelsMagic, {"label count"}, {kMaxCount}, "labels").payload;
}

fs::path default_fashion_mnist_dir() {
  const char* dir = std::getenv("DITGEN_FMNIST_DIR");
  return dir && *dir ? fs::path(dir) : fs::path("/usr/share/datasets/fashion-mnist");
}

const std::vector<std::string>& fashion_mnist_class_names() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                 "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return names;
}

FashionMnist::FashionMnist(const fs::path& dir, Split split, int pad_to) : pad_to_(pad_to) {
  if (pad_to < kSide || pad_to > kMaxPad)
    throw Error(ErrorKind::Usage, "Fashion-MNIST: pad size " + std::to_string(pad_to) + " is outside " +
                                      std::to_string(kSide) + ".." + std::to_string(kMaxPad));
  const std::string prefix = split == Split::Train ? "train" : "t10k";
  const fs::path image_path = pick_file(dir, prefix + "-images-idx3-ubyte");
  const fs::path label_path = pick_file(dir, prefix + "-labels-idx1-ubyte");

  IdxImages images = read_idx_images(image_path);
  if (images.rows != kSide || images.cols != kSide)
    throw input_error(image_path, "images are " + std::to_string(images.rows) + "x" + std::to_string(images.cols) +
                                      ", Fashion-MNIST's are 28x28");
  std::vector<uint8_t> labels = read_idx_labels(label_path);
  if (static_cast<int64_t>(labels.size()) != images.count)
    throw input_error(label_path, std::to_string(labels.size()) + " labels for the " + std::to_string(images.count) +
                                      " images of " + image_path.string());
  for (std::size_t i = 0; i < labels.size(); ++i)
    if (labels[i] >= kNumClasses)
      throw input_error(label_path, "label " + std::to_string(labels[i]) + " at index " + std::to_string(i) +
                                        " is not a class (0.." + std::to_string(kNumClasses - 1) + ")");

  // from_blob borrows the vectors; clone / to copy them into tensors that own their memory.
  images_ = at::from_blob(images.pixels.data(), {images.count, 1, kSide, kSide}, at::kByte).clone();  // [N, 1, 28, 28]
  labels_ = at::from_blob(labels.data(), {images.count}, at::kByte).to(at::kLong);  // [N]
}

int64_t FashionMnist::size() const { return images_.size(0); }

const std::vector<std::string>& FashionMnist::class_names() const { return fashion_mnist_class_names(); }

Batch FashionMnist::get(const std::vector<int64_t>& indices) const {
  const int64_t n = size();
  for (int64_t i : indices)
    if (i < 0 || i >= n)
      throw Error(ErrorKind::Usage, "Fashion-MNIST: index " + std::to_string(i) + " is outside 0.." +
                                        std::to_string(n - 1));
  const at::Tensor index = at::tensor(at::ArrayRef<int64_t>(indices), at::kLong);  // [B]
  return {prepare(images_.index_select(0, index)), labels_.index_select(0, index)};
}

at::Tensor FashionMnist::all_images() const { return prepare(images_); }

at::Tensor FashionMnist::prepare(const at::Tensor& raw) const {
  const int64_t before = (pad_to_ - kSide) / 2;
  const int64_t after = pad_to_ - kSide - before;
  at::Tensor x = raw.to(at::kFloat).div_(127.5).sub_(1.0);  // [B, 1, 28, 28] in [-1, 1]; `to` copies
  // The background is pixel 0, which scales to -1.
  return at::constant_pad_nd(x, {before, after, before, after}, -1.0);  // [B, 1, pad, pad]
}

}  // namespace ditgen::data
