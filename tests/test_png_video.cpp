// PNG text chunks and pixels round-trip, corrupt files are rejected, outputs appear whole or not at all;
// videos encode to H.264 MP4 that libav can decode back.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "catch.h"
#include "helpers.h"
#include "ditgen/core/error.h"
#include "ditgen/io/png.h"
#include "ditgen/io/video.h"

namespace fs = std::filesystem;
using ditgen::Error;
using ditgen::ErrorKind;
using namespace ditgen::io;
using ditgen::test::error_kind;
using ditgen::test::error_message;
using ditgen::test::TempDir;

namespace {




Image gradient(int width, int height, int channels) {
  Image image{width, height, channels, {}};
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x)
      for (int c = 0; c < channels; ++c) image.pixels.push_back(uint8_t(x * 7 + y * 13 + c * 50));
  return image;
}

std::vector<char> read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const fs::path& path, const std::vector<char>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

}  // namespace

TEST_CASE("PNG pixels and text chunks round-trip", "[png]") {
  TempDir dir;
  const std::vector<PngText> texts = {
      {"parameters", "a cat\nSteps: 20, Sampler: Euler"},
      {"ditgen", "Käfer ✓"},
  };
  for (int channels : {1, 3, 4}) {
    SECTION("channels " + std::to_string(channels)) {
      const fs::path file = dir / "image.png";
      const Image image = gradient(17, 9, channels);
      write_png(file, image, texts);

      const Image back = read_png(file);
      CHECK(back.width == image.width);
      CHECK(back.height == image.height);
      CHECK(back.channels == image.channels);
      CHECK(back.pixels == image.pixels);

      const std::vector<PngText> read = read_png_text(file);
      REQUIRE(read.size() == 2);
      CHECK(read[0].keyword == "parameters");
      CHECK(read[0].text == texts[0].text);
      CHECK(read[1].keyword == "ditgen");
      CHECK(read[1].text == texts[1].text);

      // ASCII text is stored as tEXt, the rest as iTXt.
      const std::vector<char> bytes = read_bytes(file);
      const std::string raw(bytes.begin(), bytes.end());
      CHECK(raw.find("tEXtparameters") != std::string::npos);
      CHECK(raw.find("iTXtditgen") != std::string::npos);
      // No temporary file is left beside the output.
      CHECK(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()) == 1);
    }
  }
}

TEST_CASE("PNG without text chunks", "[png]") {
  TempDir dir;
  const fs::path file = dir / "plain.png";
  write_png(file, gradient(4, 4, 3));
  CHECK(read_png_text(file).empty());
  CHECK(read_png(file).pixels == gradient(4, 4, 3).pixels);
}

TEST_CASE("Corrupt or truncated PNG files are input errors", "[png]") {
  TempDir dir;
  const fs::path file = dir / "image.png";
  write_png(file, gradient(8, 8, 3), {{"parameters", "hello world"}});
  std::vector<char> bytes = read_bytes(file);

  SECTION("CRC mismatch in a text chunk") {
    const std::string raw(bytes.begin(), bytes.end());
    const std::size_t at = raw.find("hello world");
    REQUIRE(at != std::string::npos);
    bytes[at] ^= 0x20;
    write_bytes(file, bytes);
    CHECK(error_kind([&] { read_png_text(file); }) == ErrorKind::Input);
    CHECK(error_message([&] { read_png_text(file); }).find("CRC") != std::string::npos);
  }
  SECTION("truncated file") {
    bytes.resize(bytes.size() / 2);
    write_bytes(file, bytes);
    CHECK(error_kind([&] { read_png_text(file); }) == ErrorKind::Input);
    CHECK(error_message([&] { read_png_text(file); }).find(file.string()) != std::string::npos);
  }
  SECTION("missing IEND") {
    bytes.resize(bytes.size() - 12);
    write_bytes(file, bytes);
    CHECK(error_kind([&] { read_png_text(file); }) == ErrorKind::Input);
  }
  SECTION("not a PNG") {
    write_bytes(file, {'h', 'e', 'l', 'l', 'o'});
    CHECK(error_kind([&] { read_png_text(file); }) == ErrorKind::Input);
    CHECK(error_kind([&] { read_png(file); }) == ErrorKind::Input);
  }
  SECTION("missing file") {
    const fs::path missing = dir / "missing.png";
    CHECK(error_kind([&] { read_png_text(missing); }) == ErrorKind::Input);
    CHECK(error_kind([&] { read_png(missing); }) == ErrorKind::Input);
    CHECK(error_message([&] { read_png(missing); }).find(missing.string()) != std::string::npos);
  }
}

TEST_CASE("Invalid PNG arguments are usage errors and write nothing", "[png]") {
  TempDir dir;
  const fs::path file = dir / "image.png";
  const Image good = gradient(4, 4, 3);

  for (const std::string& keyword :
       {std::string(), std::string(80, 'k'), std::string(" lead"), std::string("trail "),
        std::string("two  spaces"), std::string("tab\there"), std::string("nul\0x", 5)}) {
    CHECK(error_kind([&] { write_png(file, good, {{keyword, "text"}}); }) == ErrorKind::Usage);
  }
  CHECK(error_kind([&] { write_png(file, good, {{"ok", std::string("a\0b", 3)}}); }) == ErrorKind::Usage);
  CHECK(error_kind([&] { write_png(file, good, {{"ok", "\xff\xfe"}}); }) == ErrorKind::Usage);  // not UTF-8

  Image bad = good;
  bad.channels = 2;
  CHECK(error_kind([&] { write_png(file, bad); }) == ErrorKind::Usage);
  bad = good;
  bad.pixels.pop_back();
  CHECK(error_kind([&] { write_png(file, bad); }) == ErrorKind::Usage);
  bad = good;
  bad.width = 0;
  CHECK(error_kind([&] { write_png(file, bad); }) == ErrorKind::Usage);
  CHECK(dir.listing().empty());

  // Keywords may use 79 characters, inner single spaces and Latin-1 letters.
  const std::string latin1 = {'K', '\xe4', 'f', 'e', 'r'};
  write_png(file, good, {{std::string(79, 'k'), "x"}, {"a b", "y"}, {latin1, "z"}});
  const std::vector<PngText> read = read_png_text(file);
  REQUIRE(read.size() == 3);
  CHECK(read[2].keyword == latin1);
}

TEST_CASE("PNG into a missing folder is an output error and leaves no temp file", "[png]") {
  TempDir dir;
  const fs::path file = dir / "missing" / "image.png";
  CHECK(error_kind([&] { write_png(file, gradient(4, 4, 1)); }) == ErrorKind::Output);
  CHECK(error_message([&] { write_png(file, gradient(4, 4, 1)); }).find(file.string()) != std::string::npos);
  CHECK(dir.listing().empty());
}

#ifdef DITGEN_HAVE_VIDEO

namespace {

// A square of side 6 moving one pixel right and down per frame over a dark background.
std::vector<uint8_t> square_frame(int width, int height, int channels, int t) {
  std::vector<uint8_t> frame(std::size_t(width) * height * channels, 20);
  for (int y = t; y < std::min(t + 6, height); ++y)
    for (int x = t; x < std::min(t + 6, width); ++x)
      for (int c = 0; c < channels; ++c)
        frame[(std::size_t(y) * width + x) * channels + c] = uint8_t(200 + c * 20);
  return frame;
}

}  // namespace

TEST_CASE("Videos encode to H.264 MP4", "[video]") {
  REQUIRE(video_supported());
  TempDir dir;
  struct Case {
    int width, height, channels, scale, out_width, out_height;
  };
  // 27x21 is odd: the encoded frame is rounded up to 28x22.
  for (const Case& c : {Case{32, 32, 3, 4, 128, 128}, Case{27, 21, 1, 1, 28, 22}, Case{5, 3, 3, 3, 16, 10}}) {
    SECTION(std::to_string(c.width) + "x" + std::to_string(c.height) + "x" + std::to_string(c.channels) +
            " scale " + std::to_string(c.scale)) {
      const fs::path file = dir / "clip.mp4";
      VideoWriter writer(file, c.width, c.height, c.channels, {.fps = 8, .scale = c.scale, .crf = 18});
      for (int t = 0; t < 12; ++t) writer.add_frame(square_frame(c.width, c.height, c.channels, t).data());
      CHECK(!fs::exists(file));  // nothing under the target name until finish()
      writer.finish();

      const VideoInfo info = probe_video(file);
      CHECK(info.codec == "h264");
      CHECK(info.frames == 12);
      CHECK(info.width == c.out_width);
      CHECK(info.height == c.out_height);
      CHECK(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()) == 1);
      CHECK(error_kind([&] { writer.finish(); }) == ErrorKind::Usage);
    }
  }
}

TEST_CASE("An unfinished video leaves no file", "[video]") {
  TempDir dir;
  {
    VideoWriter writer(dir / "clip.mp4", 16, 16, 3);
    for (int t = 0; t < 3; ++t) writer.add_frame(square_frame(16, 16, 3, t).data());
  }
  CHECK(dir.listing().empty());
}

TEST_CASE("Invalid video arguments and files", "[video]") {
  TempDir dir;
  const fs::path file = dir / "clip.mp4";
  CHECK(error_kind([&] { VideoWriter(file, 0, 16, 3); }) == ErrorKind::Usage);
  CHECK(error_kind([&] { VideoWriter(file, 16, 16, 2); }) == ErrorKind::Usage);
  CHECK(error_kind([&] { VideoWriter(file, 16, 16, 3, {.fps = 0}); }) == ErrorKind::Usage);
  CHECK(error_kind([&] { VideoWriter(file, 16, 16, 3, {.scale = 0}); }) == ErrorKind::Usage);
  CHECK(error_kind([&] { VideoWriter(file, 16, 16, 3, {.crf = 52}); }) == ErrorKind::Usage);
  CHECK(error_kind([&] { VideoWriter(file, 4096, 16, 3, {.scale = 8}); }) == ErrorKind::Usage);
  CHECK(dir.listing().empty());

  CHECK(error_kind([&] { VideoWriter(dir / "missing" / "clip.mp4", 16, 16, 3); }) == ErrorKind::Output);
  CHECK(dir.listing().empty());

  CHECK(error_kind([&] { probe_video(dir / "missing.mp4"); }) == ErrorKind::Input);
  write_bytes(file, {'n', 'o', 't', ' ', 'a', ' ', 'v', 'i', 'd', 'e', 'o'});
  CHECK(error_kind([&] { probe_video(file); }) == ErrorKind::Input);
  CHECK(error_message([&] { probe_video(file); }).find(file.string()) != std::string::npos);
}

#else  // !DITGEN_HAVE_VIDEO

TEST_CASE("Without libav, video is a usage error", "[video]") {
  TempDir dir;
  CHECK(!video_supported());
  CHECK(error_kind([&] { VideoWriter(dir / "clip.mp4", 16, 16, 3); }) == ErrorKind::Usage);
  CHECK(error_kind([&] { probe_video(dir / "clip.mp4"); }) == ErrorKind::Usage);
  CHECK(dir.listing().empty());
}

#endif
