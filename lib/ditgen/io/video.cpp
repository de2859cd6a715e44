#include "ditgen/io/video.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <system_error>

#include "ditgen/core/error.h"
#include "ditgen/io/bounded_file.h"
#include "ditgen/io/gif.h"
#include "ditgen/io/png_frames.h"
#include "ditgen/io/untrusted_text.h"

namespace ditgen::io {

namespace {

constexpr int kMaxGifFps = 50;

// MP4/WebM frames are scaled up by an even factor, so the longer side is at least 256 pixels: then 4:2:0 keeps
// every source pixel's colour (each 2x2 chroma block lies within one pixel) and players show more than a stamp.
int auto_scale(int width, int height) {
  const int side = std::max(width, height);
  int scale = std::max(2, (256 + side - 1) / side);
  scale += scale % 2;
  while (scale > 2 && int64_t(side) * scale > kMaxClipSide) scale -= 2;
  return int64_t(side) * scale > kMaxClipSide ? 1 : scale;
}

[[noreturn]] void unsupported(const std::filesystem::path& path, VideoFormat format) {
  throw Error(ErrorKind::Usage, "this ditgen was built without FFmpeg, so it cannot write or read " +
                                    std::string(format == VideoFormat::Mp4 ? "MP4" : "WebM") +
                                    " (" + excerpt(path.string()) +
                                    "); a .gif or a folder of PNG frames (a name ending in '/') works without it");
}

}  // namespace

void check_video_output(const std::filesystem::path& path, VideoFormat format, int64_t frame_count, int width,
                        int height, int channels, int fps) {
  auto usage = [&](const std::string& what) { return Error(ErrorKind::Usage, "video " + excerpt(path.string()) + ": " + what); };
  if (!video_format_supported(format)) unsupported(path, format);
  if (frame_count < 1) throw usage("a clip needs at least one frame");
  if (width < 1 || height < 1 || width > kMaxClipSide || height > kMaxClipSide)
    throw usage("frame size " + std::to_string(width) + "x" + std::to_string(height) + " is outside 1.." +
                std::to_string(kMaxClipSide));
  if (channels != 1 && channels != 3)
    throw usage("frames have 1 (grey) or 3 (RGB) channels, got " + std::to_string(channels));
  const int max_fps = format == VideoFormat::Gif ? kMaxGifFps : 1000;
  if (fps < 1 || fps > max_fps)
    throw usage(std::string(video_format_name(format)) + " fps must be in 1.." + std::to_string(max_fps) + ", got " +
                std::to_string(fps));
  if (format == VideoFormat::PngFrames) {
    check_png_frames_target(path);
    return;
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
    throw usage("it exists and is not a regular file");
}

void write_video(const std::filesystem::path& path, const std::vector<uint8_t>& frames, int width, int height,
                 int channels, int fps, const std::string& record, VideoFormat format, const VideoWriteOptions& options) {
  const int64_t frame_bytes = int64_t(width > 0 ? width : 0) * (height > 0 ? height : 0) * (channels > 0 ? channels : 0);
  if (frame_bytes <= 0 || frames.size() % std::size_t(frame_bytes) != 0)
    throw Error(ErrorKind::Usage, "video " + excerpt(path.string()) + ": " + std::to_string(frames.size()) +
                                      " bytes are not whole frames of " + std::to_string(width) + "x" +
                                      std::to_string(height) + "x" + std::to_string(channels));
  const int64_t frame_count = int64_t(frames.size()) / frame_bytes;
  check_video_output(path, format, frame_count, width, height, channels, fps);
  if (record.size() > kMaxRecordBytes || record.find('\0') != std::string::npos || !is_utf8(record))
    throw Error(ErrorKind::Usage, "video " + excerpt(path.string()) + ": the record must be UTF-8 text of at most 1 MiB");

  switch (format) {
    case VideoFormat::Gif:
      write_gif(path, frames.data(), frame_count, width, height, channels, fps, record);
      return;
    case VideoFormat::PngFrames:
      write_png_frames(path, frames.data(), frame_count, width, height, channels, fps, record, options.frame_texts);
      return;
    case VideoFormat::Mp4:
    case VideoFormat::WebM: {
      VideoOptions av;
      av.fps = fps;
      av.format = format;
      av.scale = options.scale > 0 ? options.scale : auto_scale(width, height);
      av.crf = options.crf >= 0 ? options.crf : format == VideoFormat::Mp4 ? 18 : 24;
      av.comment = record;
      VideoWriter writer(path, width, height, channels, av);
      for (int64_t i = 0; i < frame_count; ++i) writer.add_frame(frames.data() + std::size_t(i * frame_bytes));
      writer.finish();
      return;
    }
  }
}

std::optional<VideoFormat> detect_video_format(const std::filesystem::path& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return VideoFormat::PngFrames;
  const RegularFile f = open_regular_file(path, ErrorKind::Input);
  char head[12] = {};
  const std::size_t got = std::fread(head, 1, sizeof head, f.file.get());
  return sniff_video_format({head, got});
}

namespace {

VideoFormat clip_format(const std::filesystem::path& path) {
  const std::optional<VideoFormat> format = detect_video_format(path);
  if (!format)
    throw Error(ErrorKind::Input, excerpt(path.string()) +
                                      " is not a clip ditgen reads (MP4, WebM, GIF or a folder of PNG frames)");
  if (!video_format_supported(*format)) unsupported(path, *format);
  return *format;
}

}  // namespace

VideoClip read_video(const std::filesystem::path& path) {
  const VideoFormat format = clip_format(path);
  if (format == VideoFormat::PngFrames) return read_png_frames(path, true);
  if (format != VideoFormat::Gif) return read_av_video(path, format, true);
  GifAnimation gif = read_gif(path);
  VideoClip clip;
  clip.format = VideoFormat::Gif;
  clip.codec = "gif";
  clip.width = clip.coded_width = gif.width;
  clip.height = clip.coded_height = gif.height;
  clip.frames = gif.frames;
  clip.fps = gif.fps();
  clip.pixels = std::move(gif.rgb);
  clip.record = std::move(gif.comment);
  return clip;
}

std::string read_video_record(const std::filesystem::path& path) {
  const VideoFormat format = clip_format(path);
  if (format == VideoFormat::PngFrames) return read_png_frames(path, false).record;
  if (format == VideoFormat::Gif) return read_gif_comment(path);
  return read_av_video(path, format, false).record;
}

}  // namespace ditgen::io
