// Video output through libav: H.264 in MP4, written atomically. Available when built with FFmpeg.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

namespace ditgen::io {

// True when this build links libav (DITGEN_HAVE_VIDEO).
bool video_supported();

struct VideoOptions {
  int fps = 8;
  int scale = 1;  // integer nearest-neighbour upscale, so tiny frames stay viewable
  int crf = 18;   // x264 quality
};

class VideoWriter {
 public:
  // Opens the encoder for frames of width x height with `channels` (1 grey or 3 RGB) interleaved bytes.
  // Throws Error(Usage) when video support is not built in or the size is invalid, Error(Output) on I/O.
  VideoWriter(const std::filesystem::path& path, int width, int height, int channels, VideoOptions options = {});
  ~VideoWriter();  // without finish(), nothing is left behind
  VideoWriter(const VideoWriter&) = delete;
  VideoWriter& operator=(const VideoWriter&) = delete;

  void add_frame(const uint8_t* pixels);  // width x height x channels bytes
  void finish();                          // flushes the encoder, writes the trailer, renames into place

 private:
  struct State;
  std::unique_ptr<State> state_;
};

struct VideoInfo {
  std::string codec;  // e.g. "h264"
  int width = 0;
  int height = 0;
  int64_t frames = 0;  // decoded frame count
};

// Opens and fully decodes a video file (used by tests and `info`). Throws Error(Input) on failure.
VideoInfo probe_video(const std::filesystem::path& path);

}  // namespace ditgen::io
