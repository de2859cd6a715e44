// Fashion-MNIST: IDX readers (plain and gzip), strict refusal of malformed files, the padded [-1, 1]
// dataset, and the real Debian files when installed.
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#ifdef DITGEN_HAVE_ZLIB
#include <zlib.h>
#endif

#include "catch.h"
#include "helpers.h"
#include "ditgen/core/error.h"
#include "ditgen/data/fashion_mnist.h"

namespace fs = std::filesystem;
using ditgen::ErrorKind;
using ditgen::test::contains;
using ditgen::test::error_kind;
using ditgen::test::error_message;
using ditgen::test::TempDir;
using namespace ditgen::data;

namespace {

const fs::path kDebianDir = "/usr/share/datasets/fashion-mnist";

// The storage formats the build can read: plain always, gzip with zlib.
#ifdef DITGEN_HAVE_ZLIB
const std::vector<bool> kGzipChoices = {false, true};
#else
const std::vector<bool> kGzipChoices = {false};
#endif

std::string be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}

std::string idx_images(uint32_t count, uint32_t rows, uint32_t cols, const std::vector<uint8_t>& pixels,
                       uint32_t magic = 0x803) {
  return be32(magic) + be32(count) + be32(rows) + be32(cols) + std::string(pixels.begin(), pixels.end());
}

std::string idx_labels(const std::vector<uint8_t>& labels, uint32_t magic = 0x801) {
  return be32(magic) + be32(static_cast<uint32_t>(labels.size())) + std::string(labels.begin(), labels.end());
}

// A deterministic, not too compressible pattern, so gzip output has a middle to corrupt.
std::vector<uint8_t> pattern(std::size_t n) {
  std::vector<uint8_t> out(n);
  uint32_t state = 12345;
  for (auto& v : out) {
    state = state * 1103515245u + 12345u;
    v = static_cast<uint8_t>(state >> 16);
  }
  return out;
}

std::string read_all(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_plain(const fs::path& file, const std::string& bytes) {
  std::ofstream out(file, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

// Writes `bytes` gzip-compressed when `gzip` (then the caller names the file .gz), else as they are.
void write_file(const fs::path& file, const std::string& bytes, bool gzip) {
#ifdef DITGEN_HAVE_ZLIB
  if (gzip) {
    gzFile gz = gzopen(file.c_str(), "wb");
    REQUIRE(gz != nullptr);
    REQUIRE(gzwrite(gz, bytes.data(), static_cast<unsigned>(bytes.size())) == static_cast<int>(bytes.size()));
    REQUIRE(gzclose(gz) == Z_OK);
    return;
  }
#endif
  REQUIRE_FALSE(gzip);
  write_plain(file, bytes);
}

// `f` must throw Error(Input) whose message names `file` and contains `part`.
template <class F>
void check_input_refusal(F&& f, const fs::path& file, const std::string& part) {
  CHECK(error_kind(f) == ErrorKind::Input);
  const std::string message = error_message(f);
  CHECK(contains(message, file.string()));
  CHECK(contains(message, part));
}

// A train split of 28x28 images under `dir` ("-ubyte.gz" names when `gzip`).
void write_split(const fs::path& dir, const std::vector<uint8_t>& pixels, const std::vector<uint8_t>& labels,
                 bool gzip, const std::string& prefix = "train") {
  fs::create_directories(dir);
  const std::string ext = gzip ? ".gz" : "";
  const auto count = static_cast<uint32_t>(pixels.size() / (28 * 28));
  write_file(dir / (prefix + "-images-idx3-ubyte" + ext), idx_images(count, 28, 28, pixels), gzip);
  write_file(dir / (prefix + "-labels-idx1-ubyte" + ext), idx_labels(labels), gzip);
}

float at2(const at::Tensor& image, int64_t y, int64_t x) { return image[0][y][x].item<float>(); }

}  // namespace

TEST_CASE("IDX readers round-trip pixels and labels, plain and gzip", "[data]") {
  TempDir dir;
  const std::vector<uint8_t> pixels = pattern(3 * 4 * 5);
  const std::vector<uint8_t> labels = {0, 9, 3, 255};
  for (bool gzip : kGzipChoices) {
    const std::string ext = gzip ? ".gz" : "";
    write_file(dir / ("images" + ext), idx_images(3, 4, 5, pixels), gzip);
    write_file(dir / ("labels" + ext), idx_labels(labels), gzip);

    IdxImages images = read_idx_images(dir / ("images" + ext));
    CHECK(images.count == 3);
    CHECK(images.rows == 4);
    CHECK(images.cols == 5);
    CHECK(images.pixels == pixels);
    CHECK(read_idx_labels(dir / ("labels" + ext)) == labels);  // no class check at this level
  }
}

TEST_CASE("FashionMnist pads with background and scales to [-1, 1]", "[data]") {
  TempDir dir;
  // Image 0: background with white corners; image 1: all white; image 2: all 51 (-> -0.6).
  std::vector<uint8_t> pixels(3 * 28 * 28, 0);
  pixels[0] = 255;
  pixels[28 * 28 - 1] = 255;
  std::fill(pixels.begin() + 28 * 28, pixels.begin() + 2 * 28 * 28, 255);
  std::fill(pixels.begin() + 2 * 28 * 28, pixels.end(), 51);
  const std::vector<uint8_t> labels = {3, 9, 0};

  for (bool gzip : kGzipChoices) {
    const fs::path root = dir / (gzip ? "gz" : "plain");
    write_split(root, pixels, labels, gzip);
    FashionMnist data(root, Split::Train);
    CHECK(data.size() == 3);
    CHECK(data.channels() == 1);
    CHECK(data.height() == 32);
    CHECK(data.width() == 32);
    CHECK(data.class_names().size() == 10);
    CHECK(data.class_names()[9] == "Ankle boot");

    Batch batch = data.get({1, 0, 2});
    REQUIRE(batch.images.sizes() == at::IntArrayRef{3, 1, 32, 32});
    CHECK(batch.images.scalar_type() == at::kFloat);
    CHECK(batch.labels.scalar_type() == at::kLong);
    CHECK(batch.labels[0].item<int64_t>() == 9);
    CHECK(batch.labels[1].item<int64_t>() == 3);
    CHECK(batch.labels[2].item<int64_t>() == 0);

    // All white: the 28x28 interior at rows/cols 2..29 is 1.0, the 2-pixel frame -1.0.
    const at::Tensor white = batch.images[0];
    CHECK(white.slice(1, 2, 30).slice(2, 2, 30).eq(1.0f).all().item<bool>());
    CHECK(white.sum().item<double>() == Approx(28 * 28 - (32 * 32 - 28 * 28)));
    CHECK(at2(white, 0, 0) == -1.0f);
    CHECK(at2(white, 1, 15) == -1.0f);
    CHECK(at2(white, 30, 15) == -1.0f);
    CHECK(at2(white, 15, 31) == -1.0f);

    // The corners land at (2, 2) and (29, 29): the image is centred.
    const at::Tensor corners = batch.images[1];
    CHECK(at2(corners, 2, 2) == 1.0f);
    CHECK(at2(corners, 29, 29) == 1.0f);
    CHECK(at2(corners, 2, 3) == -1.0f);
    CHECK(at2(corners, 1, 1) == -1.0f);
    CHECK(at2(corners, 30, 30) == -1.0f);
    CHECK(corners.eq(1.0f).sum().item<int64_t>() == 2);

    CHECK(at2(batch.images[2], 15, 15) == Approx(51 / 127.5 - 1));

    const at::Tensor all = data.all_images();
    REQUIRE(all.sizes() == at::IntArrayRef{3, 1, 32, 32});
    CHECK(all.equal(data.get({0, 1, 2}).images));
    CHECK(data.all_labels().equal(at::tensor(at::ArrayRef<int64_t>({3, 9, 0}), at::kLong)));
  }

  SECTION("other pad sizes: none at 28, the odd pixel after at 33") {
    write_split(dir.path(), pixels, labels, false);
    CHECK(FashionMnist(dir.path(), Split::Train, 28).get({0}).images.sizes() == at::IntArrayRef{1, 1, 28, 28});
    const at::Tensor odd = FashionMnist(dir.path(), Split::Train, 33).get({0}).images[0];
    REQUIRE(odd.sizes() == at::IntArrayRef{1, 33, 33});
    CHECK(at2(odd, 2, 2) == 1.0f);
    CHECK(at2(odd, 29, 29) == 1.0f);
    CHECK(at2(odd, 32, 32) == -1.0f);
  }

  SECTION("the t10k files make the test split") {
    write_split(dir.path(), std::vector<uint8_t>(28 * 28, 7), {5}, false, "t10k");
    FashionMnist test(dir.path(), Split::Test);
    CHECK(test.size() == 1);
    CHECK(test.all_labels()[0].item<int64_t>() == 5);
  }

  SECTION("bad indices and pad sizes are usage errors") {
    write_split(dir.path(), pixels, labels, false);
    FashionMnist data(dir.path(), Split::Train);
    CHECK(error_kind([&] { data.get({0, 3}); }) == ErrorKind::Usage);
    CHECK(error_kind([&] { data.get({-1}); }) == ErrorKind::Usage);
    CHECK(contains(error_message([&] { data.get({3}); }), "index 3"));
    CHECK(error_kind([&] { FashionMnist(dir.path(), Split::Train, 27); }) == ErrorKind::Usage);
  }

#ifdef DITGEN_HAVE_ZLIB
  SECTION("the .gz file wins over the uncompressed one") {
    write_split(dir.path(), pixels, labels, false);
    write_split(dir.path(), pixels, {1, 2, 3}, true);
    CHECK(FashionMnist(dir.path(), Split::Train).all_labels()[0].item<int64_t>() == 1);
  }
#endif
}

TEST_CASE("default_fashion_mnist_dir follows DITGEN_FMNIST_DIR", "[data]") {
  const char* old = getenv("DITGEN_FMNIST_DIR");
  const std::string saved = old ? old : "";
  setenv("DITGEN_FMNIST_DIR", "/some/where", 1);
  CHECK(default_fashion_mnist_dir() == fs::path("/some/where"));
  unsetenv("DITGEN_FMNIST_DIR");
  CHECK(default_fashion_mnist_dir() == kDebianDir);
  if (old) setenv("DITGEN_FMNIST_DIR", saved.c_str(), 1);
}

TEST_CASE("The Debian Fashion-MNIST files load", "[data]") {
#ifndef DITGEN_HAVE_ZLIB
  ditgen::test::skip_test_case("built without zlib, and the Debian files are gzip-compressed");
  return;
#endif
  if (!fs::exists(kDebianDir / "train-images-idx3-ubyte.gz")) {
    ditgen::test::skip_test_case(kDebianDir.string() + " is missing (apt-get install dataset-fashion-mnist)");
    return;
  }
  FashionMnist train(kDebianDir, Split::Train);
  FashionMnist test(kDebianDir, Split::Test);
  CHECK(train.size() == 60000);
  CHECK(test.size() == 10000);
  CHECK(at::bincount(train.all_labels()).equal(at::full({10}, 6000, at::kLong)));
  CHECK(at::bincount(test.all_labels()).equal(at::full({10}, 1000, at::kLong)));

  Batch first = train.get({0});
  CHECK(first.labels[0].item<int64_t>() == 9);
  CHECK(train.class_names()[9] == "Ankle boot");
  CHECK(first.images.min().item<float>() == -1.0f);
  CHECK(first.images.max().item<float>() <= 1.0f);
  CHECK(first.images.max().item<float>() > 0.0f);  // not blank
}

TEST_CASE("IDX readers and FashionMnist refuse malformed files", "[data]") {
  TempDir dir;
  const std::vector<uint8_t> pixels = pattern(3 * 4 * 5);

  for (bool gzip : kGzipChoices) {
    const std::string ext = gzip ? ".gz" : "";
    SECTION("wrong magic" + ext) {
      const fs::path images = dir / ("images" + ext);
      const fs::path labels = dir / ("labels" + ext);
      write_file(images, idx_images(3, 4, 5, pixels, 0x801), gzip);
      write_file(labels, idx_labels({1, 2}, 0x803), gzip);
      check_input_refusal([&] { read_idx_images(images); }, images, "bad magic 0x00000801 (expected 0x00000803)");
      check_input_refusal([&] { read_idx_labels(labels); }, labels, "bad magic 0x00000803 (expected 0x00000801)");
    }
    SECTION("truncated payload" + ext) {
      const fs::path images = dir / ("images" + ext);
      const fs::path labels = dir / ("labels" + ext);
      write_file(images, idx_images(3, 4, 5, pixels).substr(0, 16 + 59), gzip);
      write_file(labels, idx_labels({1, 2, 3}).substr(0, 8 + 1), gzip);
      check_input_refusal([&] { read_idx_images(images); }, images, "truncated: expected 60 bytes of pixels, found 59");
      check_input_refusal([&] { read_idx_labels(labels); }, labels, "truncated: expected 3 bytes of labels, found 1");
    }
    SECTION("extra trailing bytes" + ext) {
      const fs::path images = dir / ("images" + ext);
      const fs::path labels = dir / ("labels" + ext);
      write_file(images, idx_images(3, 4, 5, pixels) + "x", gzip);
      write_file(labels, idx_labels({1, 2, 3}) + std::string(1000, '\0'), gzip);
      check_input_refusal([&] { read_idx_images(images); }, images, "unexpected data after the 60 bytes of pixels");
      check_input_refusal([&] { read_idx_labels(labels); }, labels, "unexpected data after the 3 bytes of labels");
    }
    SECTION("header too short" + ext) {
      const fs::path images = dir / ("images" + ext);
      const fs::path empty = dir / ("empty" + ext);
      write_file(images, idx_images(3, 4, 5, {}).substr(0, 10), gzip);
      write_file(empty, "", gzip);
      check_input_refusal([&] { read_idx_images(images); }, images, "header too short: expected 16 bytes, found 10");
      check_input_refusal([&] { read_idx_labels(empty); }, empty, "header too short: expected 8 bytes, found 0");
    }
    SECTION("dimensions out of bounds" + ext) {
      const fs::path zero = dir / ("zero" + ext);
      const fs::path wide = dir / ("wide" + ext);
      const fs::path many = dir / ("many" + ext);
      write_file(zero, idx_images(0, 4, 5, {}), gzip);
      write_file(wide, idx_images(1, 4, 4097, {}), gzip);
      write_file(many, be32(0x801) + be32(10'000'001), gzip);
      check_input_refusal([&] { read_idx_images(zero); }, zero, "image count 0 is outside 1..10000000");
      check_input_refusal([&] { read_idx_images(wide); }, wide, "cols 4097 is outside 1..4096");
      check_input_refusal([&] { read_idx_labels(many); }, many, "label count 10000001 is outside 1..10000000");
    }
  }

#ifdef DITGEN_HAVE_ZLIB
  SECTION("corrupt gzip") {
    const fs::path images = dir / "images.gz";
    write_file(images, idx_images(100, 28, 28, pattern(100 * 28 * 28)), true);
    std::string bytes = read_all(images);
    REQUIRE(bytes.size() > 1000);
    for (std::size_t i = bytes.size() / 2; i < bytes.size() / 2 + 8; ++i) bytes[i] = static_cast<char>(~bytes[i]);
    write_plain(images, bytes);
    check_input_refusal([&] { read_idx_images(images); }, images, "corrupt gzip data");
  }
  SECTION("gzip stream cut off") {
    const fs::path images = dir / "images.gz";
    write_file(images, idx_images(3, 4, 5, pixels), true);
    const std::string bytes = read_all(images);
    write_plain(images, bytes.substr(0, bytes.size() - 4));  // drops the length trailer only
    check_input_refusal([&] { read_idx_images(images); }, images, "corrupt gzip data");
  }
#else
  SECTION("gzip needs zlib") {
    const fs::path images = dir / "images.gz";
    write_plain(images, idx_images(3, 4, 5, pixels));
    check_input_refusal([&] { read_idx_images(images); }, images, "gunzip");
  }
#endif

  SECTION("missing files") {
    check_input_refusal([&] { read_idx_images(dir / "nope"); }, dir / "nope", "cannot open");
    check_input_refusal([&] { read_idx_labels(dir / "nope.gz"); }, dir / "nope.gz", "cannot open");
    check_input_refusal([&] { FashionMnist(dir.path(), Split::Train); }, dir / "train-images-idx3-ubyte.gz",
                        "no such file");
  }

  const std::vector<uint8_t> images28(3 * 28 * 28, 100);
  SECTION("image and label counts differ") {
    write_split(dir.path(), images28, {1, 2}, false);
    check_input_refusal([&] { FashionMnist(dir.path(), Split::Train); }, dir / "train-labels-idx1-ubyte",
                        "2 labels for the 3 images");
  }
  SECTION("label outside the ten classes") {
    write_split(dir.path(), images28, {1, 10, 2}, false);
    check_input_refusal([&] { FashionMnist(dir.path(), Split::Train); }, dir / "train-labels-idx1-ubyte",
                        "label 10 at index 1");
  }
  SECTION("images that are not 28x28") {
    write_file(dir / "train-images-idx3-ubyte", idx_images(3, 4, 5, pixels), false);
    write_file(dir / "train-labels-idx1-ubyte", idx_labels({1, 2, 3}), false);
    check_input_refusal([&] { FashionMnist(dir.path(), Split::Train); }, dir / "train-images-idx3-ubyte",
                        "images are 4x5");
  }
}
