// Animated GIF89a without FFmpeg: ditgen's own LZW coder, a looping animation (NETSCAPE2.0 extension),
// frame delays from the frame rate, and a text (the generation record) in a Comment Extension.
//
// Palettes: a clip with at most 256 distinct colours in all gets one global colour table; otherwise each
// frame gets a local table, exact when the frame has at most 256 colours. A frame with more is quantized by
// median cut (deterministic: boxes of the frame's distinct colours, weighted by pixel count; the box whose widest
// channel spans most is split at that channel's weighted median, ties to the earlier box, until there are 256;
// each box's weighted mean colour is an entry) and every pixel takes its nearest entry (squared RGB distance),
// without dithering, so equal input gives equal bytes.
//
// The decoder takes any GIF87a/89a file: global and local tables, interlacing, transparency and the three
// disposal methods, composited onto an RGB canvas (the background colour where nothing was drawn). It is
// bounded (GifLimits, checked before anything is allocated), validates every field and throws Error(Input) on
// damage: a missing trailer, image data that ends early, a colour index past its table, a bad LZW code.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace ditgen::io {

struct GifLimits {
  int max_side = 16384;                      // width and height of the logical screen
  int64_t max_frames = 100000;
  int64_t max_decoded_bytes = int64_t{1} << 30;  // all frames as RGB, plus the canvas
  std::size_t max_file_bytes = std::size_t{256} << 20;
  std::size_t max_comment_bytes = std::size_t{1} << 20;  // the comment kept; further comments are skipped
};

struct GifAnimation {
  int width = 0;   // the logical screen
  int height = 0;
  int64_t frames = 0;
  std::vector<uint8_t> rgb;      // frames x height x width x 3, each frame composited as a viewer shows it
  std::vector<int> delays_cs;    // each frame's delay in 1/100 s, as stored
  int loop_count = -1;           // NETSCAPE2.0: 0 loops forever; -1 when the file has no loop extension
  std::string comment;           // the first Comment Extension, "" when there is none
  double fps() const;            // frames per second played (delays of 0 or 1 count as 10, as browsers do)
};

// The GIF bytes of `frame_count` frames of width x height x channels (1 grey or 3 RGB) interleaved bytes,
// looping forever at `fps` (1..50: finer delays than 2/100 s are slowed down by browsers; delays alternate
// so that the total time is exact to 1/100 s), with `comment` (any bytes up to 1 MiB) in a Comment Extension.
// Error(Usage) for bad arguments.
std::vector<uint8_t> encode_gif(const uint8_t* frames, int64_t frame_count, int width, int height, int channels,
                                int fps, std::string_view comment);

// encode_gif written atomically to `path` (Error(Output) when it cannot be written).
void write_gif(const std::filesystem::path& path, const uint8_t* frames, int64_t frame_count, int width, int height,
               int channels, int fps, std::string_view comment);

// Decodes a GIF held in memory; `name` is used in messages. Error(Input) for anything but a sound GIF within
// `limits`.
GifAnimation decode_gif(std::string_view bytes, const std::string& name, const GifLimits& limits = {});

// Reads and decodes a GIF file (a regular file of at most limits.max_file_bytes).
GifAnimation read_gif(const std::filesystem::path& path, const GifLimits& limits = {});

// Only the comment (the generation record) of a GIF file: the block structure is checked, the pixels not decoded.
std::string read_gif_comment(const std::filesystem::path& path, const GifLimits& limits = {});

// Whether `bytes` start like a GIF ("GIF87a" or "GIF89a").
bool looks_like_gif(std::string_view bytes);

}  // namespace ditgen::io
