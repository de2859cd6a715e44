// Clips with their generation record: GIF and PNG frames exact, MP4 and WebM within codec tolerance, formats chosen
// by name, damaged files refused as input errors, failed writes leaving nothing behind, `ditgen metadata` on each.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "catch.h"
#include "helpers.h"
#include "ditgen/core/error.h"
#include "ditgen/io/gif.h"
#include "ditgen/io/png.h"
#include "ditgen/io/png_frames.h"
#include "ditgen/io/video.h"
#include "ditgen/pipeline/outputs.h"

namespace fs = std::filesystem;
using ditgen::Error;
using ditgen::ErrorKind;
using namespace ditgen::io;
using ditgen::test::CliResult;
using ditgen::test::contains;
using ditgen::test::error_kind;
using ditgen::test::error_message;
using ditgen::test::run_cli;
using ditgen::test::TempDir;

namespace {

constexpr int kSide = 64, kFrames = 16, kFps = 8;

// A square of side 12 moving over a background. `smooth` backgrounds are gradients (many colours, what codecs
// like); otherwise it uses few colours: `palette_shift` moves every colour, so frames can be told apart.
std::vector<uint8_t> scene(int frames, int width, int height, int channels, bool smooth, int palette_shift = 0) {
  std::vector<uint8_t> out;
  for (int t = 0; t < frames; ++t)
    for (int y = 0; y < height; ++y)
      for (int x = 0; x < width; ++x) {
        const bool square = x >= 2 * t && x < 2 * t + 12 && y >= t + 4 && y < t + 16;
        for (int c = 0; c < channels; ++c) {
          int v;
          if (square) v = 200 + 20 * c;
          else if (smooth) v = c == 0 ? 30 + 2 * x : c == 1 ? 40 + 2 * y : 60 + x + y;
          else v = 16 * ((x / 8 + y / 8 + c + palette_shift) % 8);
          out.push_back(uint8_t(std::clamp(v + (smooth ? 0 : palette_shift % 7), 0, 255)));
        }
      }
  return out;
}

// The same frames as RGB, as the readers return them.
std::vector<uint8_t> as_rgb(const std::vector<uint8_t>& pixels, int channels) {
  if (channels == 3) return pixels;
  std::vector<uint8_t> rgb;
  for (uint8_t v : pixels) rgb.insert(rgb.end(), {v, v, v});
  return rgb;
}

double mean_abs_error(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  REQUIRE(a.size() == b.size());
  double sum = 0;
  for (std::size_t i = 0; i < a.size(); ++i) sum += std::abs(int(a[i]) - int(b[i]));
  return sum / double(a.size());
}

int max_abs_error(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  int worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(int(a[i]) - int(b[i])));
  return worst;
}

// A generation record as the pipeline writes it, padded to several KB with text that is not ASCII.
nlohmann::json record(const std::string& prompt = "a red bag in the center") {
  return {{"schema", 1},
          {"version", "ditgen 0.1.0"},
          {"model", {{"name", "scenes-dit"}, {"sha256", "0123456789abcdef"}, {"file", "scenes-dit.safetensors"}}},
          {"prompt", prompt},
          {"class_id", nullptr},
          {"negative", ""},
          {"seed", 7},
          {"sampler", "ddim"},
          {"steps", 3},
          {"eta", 0.0},
          {"cfg_scale", 2.5},
          {"cfg_channels", 3},
          {"height", kSide},
          {"width", kSide},
          {"frames", kFrames},
          {"fps", kFps},
          {"note", std::string(6000, 'x') + " Käfer ✓"}};
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

bool libav_missing() {
  if (video_format_supported(VideoFormat::Mp4)) return false;
  ditgen::test::skip_test_case("this build has no FFmpeg (libav): MP4 and WebM are not written");
  return true;
}

// Offsets of the Graphic Control Extensions' packed byte in a GIF, walking its blocks.
std::vector<std::size_t> control_offsets(const std::string& gif) {
  std::vector<std::size_t> found;
  auto skip_sub_blocks = [&](std::size_t p) {
    while (gif.at(p) != 0) p += std::size_t(uint8_t(gif[p])) + 1;
    return p + 1;
  };
  const int packed = uint8_t(gif[10]);
  std::size_t p = 13 + ((packed & 0x80) ? 3u * (2u << (packed & 7)) : 0u);
  while (uint8_t(gif.at(p)) != 0x3b) {
    if (uint8_t(gif[p]) == 0x21) {
      if (uint8_t(gif[p + 1]) == 0xf9) found.push_back(p + 3);
      p = skip_sub_blocks(p + 2);
    } else {  // an image: descriptor, local table, minimum code size, data
      const int flags = uint8_t(gif[p + 9]);
      p += 10 + ((flags & 0x80) ? 3u * (2u << (flags & 7)) : 0u) + 1;
      p = skip_sub_blocks(p);
    }
  }
  return found;
}

}  // namespace

TEST_CASE("video formats come from names or an explicit format, and others are refused with the choices", "[video]") {
  TempDir dir;
  CHECK(video_format_for("clip.mp4") == VideoFormat::Mp4);
  CHECK(video_format_for("out/CLIP.MP4") == VideoFormat::Mp4);
  CHECK(video_format_for("clip.webm") == VideoFormat::WebM);
  CHECK(video_format_for("clip.gif") == VideoFormat::Gif);
  CHECK(video_format_for("out/frames/") == VideoFormat::PngFrames);
  CHECK(video_format_for(dir.path()) == VideoFormat::PngFrames);  // an existing folder
  CHECK(video_format_for("frames", "png") == VideoFormat::PngFrames);
  CHECK(video_format_for("frames", "Frames") == VideoFormat::PngFrames);
  CHECK(video_format_for("clip.gif", "GIF") == VideoFormat::Gif);
  CHECK(video_format_for("clip.webm", "webm") == VideoFormat::WebM);

  for (auto [name, format] : {std::pair{"clip.avi", ""}, {"clip", ""}, {"clip.png", ""}, {"clip.mp4", "gif"},
                              {"clip.gif", "webm"}, {"clip.png", "png"}, {"clip.mp4", "mkv"}, {"clip", "mp4"}, {"", ""}}) {
    INFO(name << " as '" << format << "'");
    const std::string message = error_message([&] { video_format_for(name, format); });
    CHECK(error_kind([&] { video_format_for(name, format); }) == ErrorKind::Usage);
    CHECK(message.find('\n') == std::string::npos);
    if (std::string(format).empty() || std::string(format) == "mkv")
      for (const char* choice : {"mp4", "webm", "gif", "png"}) CHECK(contains(message, choice));
  }
  CHECK(contains(error_message([] { video_format_for("clip.avi"); }), "cannot tell the video format of clip.avi"));
  CHECK(contains(error_message([] { video_format_for("clip.mp4", "mkv"); }), "unknown video format 'mkv'"));
  CHECK(contains(error_message([] { video_format_for("clip.mp4", "gif"); }), "ends in .gif, not clip.mp4"));
}

TEST_CASE("GIF clips round-trip exactly, loop, keep their frame rate and their record", "[video]") {
  TempDir dir;
  const std::string rec = record().dump();
  for (int channels : {3, 1}) {
    SECTION("channels " + std::to_string(channels)) {
      const std::vector<uint8_t> frames = scene(kFrames, kSide, kSide, channels, false);
      const fs::path file = dir / "clip.gif";
      write_video(file, frames, kSide, kSide, channels, kFps, rec, VideoFormat::Gif);
      CHECK(dir.listing() == std::vector<std::string>{"clip.gif"});

      const VideoClip clip = read_video(file);
      CHECK(clip.format == VideoFormat::Gif);
      CHECK(clip.codec == "gif");
      CHECK(clip.width == kSide);
      CHECK(clip.height == kSide);
      CHECK(clip.frames == kFrames);
      CHECK(clip.fps == 8.0);  // 16 frames at 12.5/100 s: delays 13, 12, 13, ... make 2 s exactly
      CHECK(clip.pixels == as_rgb(frames, channels));
      CHECK(clip.record == rec);
      CHECK(read_video_record(file) == rec);

      const GifAnimation gif = read_gif(file);
      CHECK(gif.loop_count == 0);  // forever
      CHECK(gif.delays_cs.front() == 13);
      CHECK(gif.delays_cs[1] == 12);
      // Equal input, equal bytes.
      write_video(dir / "again.gif", frames, kSide, kSide, channels, kFps, rec, VideoFormat::Gif);
      CHECK(read_file(dir / "again.gif") == read_file(file));
    }
  }
  SECTION("frames of 256 colours each, more in all: local tables, still exact") {
    std::vector<uint8_t> frames;
    for (int t = 0; t < 3; ++t)
      for (int i = 0; i < 256; ++i) frames.insert(frames.end(), {uint8_t(i), uint8_t(t * 80), uint8_t(255 - i)});
    write_video(dir / "local.gif", frames, 16, 16, 3, 25, "", VideoFormat::Gif);
    const VideoClip clip = read_video(dir / "local.gif");
    CHECK(clip.pixels == frames);
    CHECK(clip.fps == 25.0);
    CHECK(clip.record.empty());
  }
}

TEST_CASE("the GIF quantizer keeps a frame of thousands of colours close", "[video]") {
  TempDir dir;
  std::vector<uint8_t> frame;  // 4,096 colours: a smooth gradient in all three channels
  for (int y = 0; y < kSide; ++y)
    for (int x = 0; x < kSide; ++x) frame.insert(frame.end(), {uint8_t(x * 4), uint8_t(y * 4), uint8_t(255 - 2 * (x + y))});
  write_video(dir / "many.gif", frame, kSide, kSide, 3, kFps, "", VideoFormat::Gif);
  const VideoClip clip = read_video(dir / "many.gif");
  REQUIRE(clip.pixels.size() == frame.size());
  const double mae = mean_abs_error(clip.pixels, frame);
  const int worst = max_abs_error(clip.pixels, frame);
  INFO("mean abs error " << mae << ", max " << worst);
  CHECK(mae < 4.0);  // 3.5 and 6 when written: 16 colours a table entry
  CHECK(worst <= 12);
}

TEST_CASE("the GIF decoder follows interlacing, transparency and the disposal methods", "[video]") {
  SECTION("interlaced rows") {
    std::vector<uint8_t> rows;  // 11 rows of 2 grey pixels, each row its own value
    for (int y = 0; y < 11; ++y) rows.insert(rows.end(), {uint8_t(10 * y), uint8_t(10 * y)});
    const std::vector<uint8_t> bytes = encode_gif(rows.data(), 1, 2, 11, 1, kFps, "");
    std::string gif(bytes.begin(), bytes.end());
    const std::size_t descriptor = control_offsets(gif).at(0) + 5;  // the GCE's packed byte + 5: 0x2c
    REQUIRE(uint8_t(gif[descriptor]) == 0x2c);
    gif[descriptor + 9] = char(gif[descriptor + 9] | 0x40);
    // Stored rows 0..10 are image rows 0, 8, 4, 2, 6, 10, 1, 3, 5, 7, 9.
    const int order[] = {0, 8, 4, 2, 6, 10, 1, 3, 5, 7, 9};
    const GifAnimation decoded = decode_gif(gif, "interlaced.gif");
    for (int r = 0; r < 11; ++r) CHECK(int(decoded.rgb[std::size_t(order[r]) * 6]) == 10 * r);
  }
  SECTION("transparency and disposal") {
    // Frame 1 all R; frame 2 G on the left, T (transparent) on the right; frame 3 T left, K right.
    // The table is sorted: K (0, also the background), T (1), G (2), R (3).
    const uint8_t K[3] = {0, 0, 0}, T[3] = {0, 0, 200}, G[3] = {0, 200, 0}, R[3] = {200, 0, 0};
    const uint8_t* halves[3][2] = {{R, R}, {G, T}, {T, K}};
    std::vector<uint8_t> frames;
    for (auto& f : halves)
      for (int x = 0; x < 4; ++x) frames.insert(frames.end(), f[x / 2], f[x / 2] + 3);  // 4x1 frames
    const std::vector<uint8_t> bytes = encode_gif(frames.data(), 3, 4, 1, 3, kFps, "");
    const std::string plain(bytes.begin(), bytes.end());
    const std::vector<std::size_t> control = control_offsets(plain);
    REQUIRE(control.size() == 3);
    auto decode = [&](int disposal_of_frame, int disposal) {
      std::string gif = plain;
      for (int f : {1, 2}) {  // T transparent in frames 2 and 3
        gif[control[std::size_t(f)]] = char(gif[control[std::size_t(f)]] | 1);
        gif[control[std::size_t(f)] + 3] = 1;
      }
      if (disposal_of_frame >= 0) gif[control[std::size_t(disposal_of_frame)]] = char((disposal << 2) | (disposal_of_frame > 0));
      return decode_gif(gif, "crafted.gif").rgb;
    };
    auto expect = [&](std::vector<std::vector<const uint8_t*>> want) {
      std::vector<uint8_t> out;
      for (auto& f : want)
        for (int x = 0; x < 4; ++x) out.insert(out.end(), f[std::size_t(x / 2)], f[std::size_t(x / 2)] + 3);
      return out;
    };
    CHECK(decode(-1, 0) == expect({{R, R}, {G, R}, {G, K}}));  // left in place: R shows through
    CHECK(decode(0, 2) == expect({{R, R}, {G, K}, {G, K}}));   // frame 1 restored to the background
    CHECK(decode(1, 3) == expect({{R, R}, {G, R}, {R, K}}));   // frame 2 restored to what was before it
  }
}

TEST_CASE("damaged GIFs are input errors, never crashes", "[video]") {
  TempDir dir;
  const std::vector<uint8_t> frames = scene(3, 24, 16, 3, true);  // 384 colours a frame: quantized, local tables
  const std::vector<uint8_t> bytes = encode_gif(frames.data(), 3, 24, 16, 3, kFps, record().dump());
  const std::string gif(bytes.begin(), bytes.end());
  REQUIRE_NOTHROW(decode_gif(gif, "clip.gif"));

  // Every truncation: the trailer is missing at least.
  int refused = 0;
  for (std::size_t n = 0; n < gif.size(); ++n)
    refused += error_kind([&] { decode_gif(gif.substr(0, n), "cut.gif"); }) == ErrorKind::Input;
  CHECK(refused == int(gif.size()));

  // Random damage: decoded or refused with Error, nothing else (the fuzz target goes further).
  std::mt19937 rng(5);
  for (int trial = 0; trial < 2000; ++trial) {
    std::string damaged = gif;
    for (int k = 0; k < 1 + trial % 4; ++k) damaged[rng() % damaged.size()] = char(rng());
    try {
      decode_gif(damaged, "damaged.gif");
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::Input);
    }
  }

  auto refusal = [](const std::string& bytes, const GifLimits& limits = {}) {
    CHECK(error_kind([&] { decode_gif(bytes, "x.gif", limits); }) == ErrorKind::Input);
    return error_message([&] { decode_gif(bytes, "x.gif", limits); });
  };
  using namespace std::string_literals;
  // A 2x1 screen with a table of two colours, then one image whose LZW data (3-bit codes) is `data`.
  auto tiny = [](const std::string& data) {
    std::string gif = "GIF89a\x02\0\x01\0\x80\0\0" "\0\0\0\xff\xff\xff" "\x2c\0\0\0\0\x02\0\x01\0\0\x02"s;
    gif += char(data.size());
    gif += data;
    return gif + "\0;"s;
  };
  CHECK(contains(refusal("GIF89a\0\0\0\0\0\0\0;"s), "logical screen 0x0 is outside 1..16384"));
  CHECK(contains(refusal(tiny("\xc4\x01"s)), "LZW code 7 past the table (6 entries)"));      // clear, 0, 7
  CHECK(contains(refusal(tiny("\xdc\x00"s)), "colour index 3 past a table of 2"));            // clear, 3, 3
  CHECK(contains(refusal(tiny("\x0c"s)), "image data ends early"));                           // clear, 1
  CHECK(contains(refusal(gif, {.max_frames = 2}), "more than 2 frames"));
  CHECK(contains(refusal(gif, {.max_decoded_bytes = 24 * 16 * 3 * 4}), "decode to more than"));
  CHECK(contains(refusal(gif, {.max_comment_bytes = 100}), "comment larger than 100 bytes"));
  CHECK(contains(refusal("GIF89a\x02\0\x01\0\0\0\0\x2c\0\0\0\0\x02\0\x01\0\0\x02\x01\x0c\0;"s), "no colour table"));
  CHECK(contains(refusal("GIF89a\x02\0\x01\0\0\0\0;"s), "no frames"));

  // Through read_video, as `metadata` and `--from` read them.
  write_file(dir / "cut.gif", gif.substr(0, gif.size() / 2));
  CHECK(error_kind([&] { read_video(dir / "cut.gif"); }) == ErrorKind::Input);
  CHECK(contains(error_message([&] { read_video(dir / "cut.gif"); }), (dir / "cut.gif").string()));
  CHECK(error_kind([&] { read_video_record(dir / "cut.gif"); }) == ErrorKind::Input);
  write_file(dir / "text.gif", "hello, not a GIF");
  CHECK(contains(error_message([&] { read_video(dir / "text.gif"); }), "is not a clip ditgen reads"));
  CHECK(error_kind([&] { read_video(dir / "absent.gif"); }) == ErrorKind::Input);
}

TEST_CASE("PNG frame folders round-trip exactly with the record and their place in every frame", "[video]") {
  TempDir dir;
  const std::string rec = record().dump();
  const std::vector<uint8_t> frames = scene(kFrames, kSide, kSide, 3, true);  // many colours: PNG is lossless
  VideoWriteOptions options;
  options.frame_texts = {{"parameters", "a red bag in the center\nSteps: 3"}};
  write_video(dir / "clip/", frames, kSide, kSide, 3, kFps, rec, VideoFormat::PngFrames, options);
  std::vector<std::string> expected = {"clip"};
  for (int i = 0; i < kFrames; ++i) expected.push_back("clip/" + png_frame_name(i));
  CHECK(dir.listing() == expected);

  const std::vector<PngText> texts = read_png_text(dir / "clip" / "frame-0003.png");
  REQUIRE(texts.size() == 3);
  CHECK(texts[0].keyword == "parameters");
  CHECK(texts[1].keyword == "ditgen");
  CHECK(texts[1].text == rec);
  CHECK(texts[2].keyword == "ditgen-frame");
  CHECK(nlohmann::json::parse(texts[2].text) == nlohmann::json{{"index", 3}, {"frames", kFrames}, {"fps", kFps}});

  const VideoClip clip = read_video(dir / "clip");
  CHECK(clip.format == VideoFormat::PngFrames);
  CHECK(clip.frames == kFrames);
  CHECK(clip.width == kSide);
  CHECK(clip.height == kSide);
  CHECK(clip.fps == kFps);
  CHECK(clip.pixels == frames);
  CHECK(clip.record == rec);
  CHECK(read_video_record(dir / "clip/") == rec);

  SECTION("an earlier clip is replaced whole") {
    const std::vector<uint8_t> grey = scene(4, 8, 6, 1, false);
    write_video(dir / "clip", grey, 8, 6, 1, 4, "short", VideoFormat::PngFrames);
    CHECK(dir.listing() == std::vector<std::string>{"clip", "clip/frame-0000.png", "clip/frame-0001.png",
                                                    "clip/frame-0002.png", "clip/frame-0003.png"});
    const VideoClip back = read_video(dir / "clip");
    CHECK(back.pixels == as_rgb(grey, 1));
    CHECK(back.fps == 4);
    CHECK(back.record == "short");
  }
  SECTION("a missing frame, a frame of another clip, a folder of something else") {
    fs::remove(dir / "clip" / "frame-0002.png");
    CHECK(contains(error_message([&] { read_video(dir / "clip"); }), "lacks frame-0002.png"));
    write_video(dir / "other/", scene(kFrames, kSide, kSide, 3, true), kSide, kSide, 3, kFps, "other", VideoFormat::PngFrames);
    fs::copy_file(dir / "other" / "frame-0002.png", dir / "clip" / "frame-0002.png");
    CHECK(error_kind([&] { read_video(dir / "clip"); }) == ErrorKind::Input);
    CHECK(contains(error_message([&] { read_video(dir / "clip"); }), "belongs to another clip"));
    fs::create_directory(dir / "photos");
    write_file(dir / "photos" / "holiday.jpg", "jpeg");
    CHECK(contains(error_message([&] { read_video(dir / "photos"); }), "holds no PNG frames"));
    // ... and is not replaced by frames.
    CHECK(error_kind([&] { write_video(dir / "photos", frames, kSide, kSide, 3, kFps, rec, VideoFormat::PngFrames); }) ==
          ErrorKind::Usage);
    CHECK(fs::exists(dir / "photos" / "holiday.jpg"));
  }
}

TEST_CASE("MP4 and WebM clips decode within codec tolerance, with frame count, fps and record", "[video]") {
  if (libav_missing()) return;
  TempDir dir;
  const std::string rec = record().dump();
  for (auto [format, name, codec] : {std::tuple{VideoFormat::Mp4, "clip.mp4", "h264"},
                                     {VideoFormat::WebM, "clip.webm", "vp9"}}) {
    for (int channels : {3, 1}) {
      SECTION(std::string(name) + " channels " + std::to_string(channels)) {
        const std::vector<uint8_t> frames = scene(kFrames, kSide, kSide, channels, true);
        write_video(dir / name, frames, kSide, kSide, channels, kFps, rec, format);
        CHECK(dir.listing() == std::vector<std::string>{name});
        const VideoClip clip = read_video(dir / name);
        CHECK(clip.format == format);
        CHECK(clip.codec == codec);
        CHECK(clip.frames == kFrames);
        CHECK(clip.fps == Approx(kFps));
        CHECK(clip.width == kSide);
        CHECK(clip.height == kSide);
        CHECK(clip.record == rec);
        CHECK(read_video_record(dir / name) == rec);
        CHECK(clip.coded_width == 4 * kSide);  // scaled up to 256 pixels
        const double mae = mean_abs_error(clip.pixels, as_rgb(frames, channels));
        INFO("mean abs error " << mae);
        CHECK(mae < 1.5);  // about 0.5 when written
      }
    }
  }
  SECTION("odd sizes, any scale, sharp colour edges") {
    // Red and blue squares of 3 pixels: 4:2:0 would mix them, but scaled up each pixel keeps its chroma.
    std::vector<uint8_t> frames;
    for (int t = 0; t < kFrames; ++t)
      for (int y = 0; y < 31; ++y)
        for (int x = 0; x < 33; ++x) {
          const bool red = ((x + t) / 3 + y / 3) % 2;
          frames.insert(frames.end(), {uint8_t(red ? 220 : 20), 30, uint8_t(red ? 30 : 210)});
        }
    for (auto [name, format] : {std::pair{"odd.mp4", VideoFormat::Mp4}, {"odd.webm", VideoFormat::WebM}})
      for (int scale : {0, 2, 1}) {
        INFO(name << " scale " << scale);
        VideoWriteOptions options;
        options.scale = scale;
        write_video(dir / name, frames, 33, 31, 3, 12, "", format, options);
        const VideoClip clip = read_video(dir / name);
        CHECK(clip.width == 33);
        CHECK(clip.height == 31);
        CHECK(clip.coded_width == (scale == 0 ? 33 * 8 : scale == 1 && format == VideoFormat::Mp4 ? 34 : 33 * scale));
        CHECK(clip.coded_height == (scale == 0 ? 31 * 8 : scale == 1 && format == VideoFormat::Mp4 ? 32 : 31 * scale));
        CHECK(clip.fps == Approx(12));
        CHECK(clip.record.empty());
        const double mae = mean_abs_error(clip.pixels, frames);
        INFO("mean abs error " << mae);
        if (scale != 1) CHECK(mae < 3.0);  // at scale 1, 4:2:0 mixes red and blue: about 50
      }
  }
}

TEST_CASE("damaged MP4 and WebM files are input errors", "[video]") {
  if (libav_missing()) return;
  TempDir dir;
  const std::vector<uint8_t> frames = scene(kFrames, kSide, kSide, 3, true);
  write_video(dir / "clip.mp4", frames, kSide, kSide, 3, kFps, record().dump(), VideoFormat::Mp4);
  write_video(dir / "clip.webm", frames, kSide, kSide, 3, kFps, record().dump(), VideoFormat::WebM);
  const std::string mp4 = read_file(dir / "clip.mp4"), webm = read_file(dir / "clip.webm");

  auto refused = [&](const std::string& name, const std::string& bytes) {
    write_file(dir / name, bytes);
    INFO(name);
    CHECK(error_kind([&] { read_video(dir / name); }) == ErrorKind::Input);
    CHECK(contains(error_message([&] { read_video(dir / name); }), (dir / name).string()));
  };
  refused("half.mp4", mp4.substr(0, mp4.size() / 2));  // the record, at the end, is cut: libav alone reads on
  refused("short.mp4", mp4.substr(0, mp4.size() - 1));
  refused("short.webm", webm.substr(0, webm.size() - 1));
  refused("header.mp4", mp4.substr(0, 40));
  std::string garbage = mp4;
  for (std::size_t i = 32; i < garbage.size(); i += 7) garbage[i] = char(garbage[i] ^ 0x5a);
  refused("garbage.mp4", garbage);
  refused("header.webm", webm.substr(0, 40));
  // Any name: the content says what it is.
  refused("clip.gif", mp4.substr(0, mp4.size() / 2));
}

TEST_CASE("unwritable clip outputs are refused and leave nothing behind", "[video]") {
  TempDir dir;
  const std::vector<uint8_t> frames = scene(4, 16, 16, 3, false);
  std::vector<std::pair<std::string, VideoFormat>> outputs = {{"clip.gif", VideoFormat::Gif},
                                                              {"frames/", VideoFormat::PngFrames}};
  if (video_format_supported(VideoFormat::Mp4))
    outputs.insert(outputs.end(), {{"clip.mp4", VideoFormat::Mp4}, {"clip.webm", VideoFormat::WebM}});
  for (const auto& [name, format] : outputs) {
    INFO(name);
    const fs::path inside_missing = dir / "missing" / name;
    CHECK(error_kind([&] { write_video(inside_missing, frames, 16, 16, 3, kFps, "r", format); }) == ErrorKind::Output);
    CHECK(contains(error_message([&] { write_video(inside_missing, frames, 16, 16, 3, kFps, "r", format); }),
                   (dir / "missing").string()));
    // Bad arguments are usage errors, before anything is written.
    CHECK(error_kind([&] { write_video(dir / name, frames, 16, 16, 2, kFps, "r", format); }) == ErrorKind::Usage);
    CHECK(error_kind([&] { write_video(dir / name, frames, 15, 16, 3, kFps, "r", format); }) == ErrorKind::Usage);
    CHECK(error_kind([&] { write_video(dir / name, frames, 16, 16, 3, 0, "r", format); }) == ErrorKind::Usage);
    CHECK(error_kind([&] { write_video(dir / name, frames, 16, 16, 3, kFps, "\xff", format); }) == ErrorKind::Usage);
    CHECK(dir.listing().empty());
  }
  // A file output that exists as a folder, a frames folder that exists as a file.
  fs::create_directory(dir / "taken.gif");
  CHECK(error_kind([&] { check_video_output(dir / "taken.gif", VideoFormat::Gif, 4, 16, 16, 3, kFps); }) == ErrorKind::Usage);
  write_file(dir / "taken", "x");
  CHECK(error_kind([&] { write_video(dir / "taken", frames, 16, 16, 3, kFps, "", VideoFormat::PngFrames); }) ==
        ErrorKind::Usage);
  CHECK(dir.listing() == std::vector<std::string>{"taken", "taken.gif"});
  // A frames folder that fails half-way (a bad text keyword reaches the PNG writer) leaves no temporary folder.
  VideoWriteOptions bad_text;
  bad_text.frame_texts = {{"two  spaces", "x"}};
  CHECK(error_kind([&] { write_video(dir / "frames/", frames, 16, 16, 3, kFps, "", VideoFormat::PngFrames, bad_text); }) ==
        ErrorKind::Usage);
  CHECK(dir.listing() == std::vector<std::string>{"taken", "taken.gif"});
  CHECK(error_kind([&] { check_video_output(dir / "fast.gif", VideoFormat::Gif, 4, 16, 16, 3, 60); }) == ErrorKind::Usage);
}

TEST_CASE("without FFmpeg, MP4 and WebM fail with one line naming what works", "[video]") {
  if (video_format_supported(VideoFormat::Mp4))
    return ditgen::test::skip_test_case("this build has FFmpeg: MP4 and WebM work");
  TempDir dir;
  const std::vector<uint8_t> frames = scene(2, 16, 16, 3, false);
  for (const char* name : {"clip.mp4", "clip.webm"}) {
    const std::string message = error_message([&] { write_video(dir / name, frames, 16, 16, 3, kFps, "", video_format_for(name)); });
    CHECK(error_kind([&] { write_video(dir / name, frames, 16, 16, 3, kFps, "", video_format_for(name)); }) == ErrorKind::Usage);
    CHECK(contains(message, "built without FFmpeg"));
    CHECK(contains(message, ".gif or a folder of PNG frames"));
    CHECK(message.find('\n') == std::string::npos);
  }
  write_video(dir / "clip.gif", frames, 16, 16, 3, kFps, "r", VideoFormat::Gif);
  write_video(dir / "frames/", frames, 16, 16, 3, kFps, "r", VideoFormat::PngFrames);
  CHECK(read_video(dir / "clip.gif").record == "r");
  CHECK(read_video(dir / "frames").record == "r");
}

TEST_CASE("ditgen metadata prints the record of every clip format", "[video][cli]") {
  TempDir dir;
  const nlohmann::json rec = record();
  const std::vector<uint8_t> frames = scene(kFrames, kSide, kSide, 3, false);
  std::vector<std::string> names = {"clip.gif", "frames/"};
  if (video_format_supported(VideoFormat::Mp4)) names.insert(names.end(), {"clip.mp4", "clip.webm"});
  for (const std::string& name : names) {
    INFO(name);
    write_video(dir / name, frames, kSide, kSide, 3, kFps, rec.dump(), video_format_for(name));
    CHECK(ditgen::read_generation_record(dir / name) == rec);
    const CliResult text = run_cli({"metadata", name}, dir.path());
    INFO(text.err);
    CHECK(text.exit_code == 0);
    CHECK(contains(text.out, "a red bag in the center\nSteps: 3, Sampler: ddim, CFG scale: 2.5, Seed: 7, Size: 64x64"));
    CHECK(contains(text.out, "Replay: ditgen generate --from " + name));
    const CliResult json = run_cli({"metadata", name, "--json"}, dir.path());
    CHECK(json.exit_code == 0);
    CHECK(nlohmann::json::parse(json.out) == rec);
  }
  // No record, a damaged record, a damaged file: input errors, one line each.
  write_video(dir / "bare.gif", frames, kSide, kSide, 3, kFps, "", VideoFormat::Gif);
  nlohmann::json forged = rec;
  forged.erase("steps");
  forged["seed"] = 1e300;
  write_video(dir / "forged.gif", frames, kSide, kSide, 3, kFps, forged.dump(), VideoFormat::Gif);
  write_file(dir / "cut.gif", read_file(dir / "clip.gif").substr(0, 500));
  for (auto [name, message] : {std::pair{"bare.gif", "no ditgen metadata"}, {"forged.gif", "damaged ditgen record"},
                               {"cut.gif", "corrupt GIF file cut.gif"}}) {
    const CliResult r = run_cli({"metadata", name}, dir.path());
    INFO(name << ": " << r.err);
    CHECK(r.exit_code == 3);
    CHECK(contains(r.err, message));
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  }
}
