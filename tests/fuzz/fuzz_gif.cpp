// GIF clips (what `ditgen metadata`, `--from` and read_video read): any file decodes to consistent frames or is
// refused with ditgen::Error; never a crash. The first byte picks the mode:
//   0: the input is the file;
//   1: the rest is LZW data inside a valid frame (size, tables, interlacing, transparency from the next bytes),
//      so the fuzzer reaches the decoder instead of stopping at the block structure;
//   2: the rest is the pixels of a small clip, encoded by ditgen and decoded again.
// Whatever decodes is encoded again and decoded: frames of at most 256 colours must come back exactly.
#include <algorithm>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "ditgen/core/error.h"
#include "ditgen/io/gif.h"
#include "fuzz_util.h"

namespace {

using namespace ditgen;

// Small enough that ASan's memory stays well under libFuzzer's RSS limit, and inputs stay fast.
const io::GifLimits kLimits{.max_side = 1024, .max_frames = 10000, .max_decoded_bytes = int64_t{2} << 20};

bool at_most_256_colours(const uint8_t* rgb, std::size_t pixels) {
  std::unordered_set<uint32_t> colours;
  for (std::size_t i = 0; i < pixels; ++i) {
    colours.insert((uint32_t(rgb[3 * i]) << 16) | (uint32_t(rgb[3 * i + 1]) << 8) | rgb[3 * i + 2]);
    if (colours.size() > 256) return false;
  }
  return true;
}

// Encodes decoded frames again: same shape and comment, exact where each frame has at most 256 colours.
void round_trip(const std::vector<uint8_t>& rgb, int64_t frames, int width, int height, const std::string& comment) {
  if (rgb.size() != std::size_t(frames) * std::size_t(width) * std::size_t(height) * 3) __builtin_trap();
  if (rgb.size() > (std::size_t{16} << 10)) return;  // quantizing large frames is slow; the decoder is the target
  const std::vector<uint8_t> bytes = io::encode_gif(rgb.data(), frames, width, height, 3, 10, comment);
  const io::GifAnimation back =
      io::decode_gif({reinterpret_cast<const char*>(bytes.data()), bytes.size()}, "round trip", kLimits);
  if (back.frames != frames || back.width != width || back.height != height || back.comment != comment ||
      back.loop_count != 0 || back.rgb.size() != rgb.size())
    __builtin_trap();
  const std::size_t pixels = std::size_t(width) * std::size_t(height);
  for (int64_t f = 0; f < frames; ++f) {
    const uint8_t* in = rgb.data() + std::size_t(f) * pixels * 3;
    if (at_most_256_colours(in, pixels) && !std::equal(in, in + pixels * 3, back.rgb.data() + std::size_t(f) * pixels * 3))
      __builtin_trap();
  }
}

// Mode 1: a 89a file with one frame whose LZW data is the input.
std::string frame_around(const uint8_t* data, size_t size) {
  if (size < 5) return {};
  const int width = 1 + data[0] % 40, height = 1 + data[1] % 40, flags = data[2], transparent = data[3];
  const int table_bits = 1 + flags % 8, min_code_size = 2 + data[4] % 7;
  std::string gif = "GIF89a";
  for (int v : {width, height}) gif += {char(v), '\0'};
  gif += {char(0x80 | (table_bits - 1)), '\0', '\0'};
  for (int i = 0; i < (1 << table_bits); ++i) gif += {char(i * 37), char(i * 91), char(i * 13)};
  gif += {'\x21', '\xf9', '\x04', char(((flags >> 3) & 0x1c) | ((flags >> 6) & 1)), '\x05', '\0', char(transparent), '\0'};
  gif += {'\x2c', '\0', '\0', '\0', '\0', char(width), '\0', char(height), '\0', char(flags & 0x40), char(min_code_size)};
  for (size_t at = 5; at < size; at += 255) {
    const size_t n = std::min<size_t>(255, size - at);
    gif += char(n);
    gif.append(reinterpret_cast<const char*>(data + at), n);
  }
  gif += {'\0', ';'};
  return gif;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const int mode = data[0] % 3;
  ++data;
  --size;
  try {
    if (mode == 2) {
      if (size < 3) return 0;
      const int width = 1 + data[0] % 24, height = 1 + data[1] % 24;
      const size_t frame = size_t(width) * size_t(height) * 3;
      const int64_t frames = int64_t((size - 2) / frame);
      if (frames == 0) return 0;
      const std::vector<uint8_t> rgb(data + 2, data + 2 + size_t(frames) * frame);
      const std::string comment(reinterpret_cast<const char*>(data), std::min<size_t>(size, 600));
      round_trip(rgb, frames, width, height, comment);
      return 0;
    }
    const io::GifAnimation gif =
        mode == 0 ? io::read_gif(fuzz::write_scratch(data, size), kLimits)
                  : io::decode_gif(frame_around(data, size), "crafted", kLimits);
    if (gif.delays_cs.size() != std::size_t(gif.frames) || gif.fps() < 0) __builtin_trap();
    round_trip(gif.rgb, gif.frames, gif.width, gif.height, gif.comment.substr(0, 1 << 16));
  } catch (const Error&) {
  }
  return 0;
}
