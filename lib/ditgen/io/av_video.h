// MP4 (H.264) and WebM (VP9) through FFmpeg's libav, written atomically, with a text (the generation record) in
// the container's `comment` tag (MP4's iTunes-style ©cmt atom, WebM's COMMENT tag) and the frame size before
// scaling in its `description` ("ditgen frame size WxH"), so a reader gets back the frames it was given. Without
// libav at build time (no DITGEN_HAVE_VIDEO) every call throws Error(Usage) saying so.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "ditgen/io/clip.h"

namespace ditgen::io {

// True when this build links libav (DITGEN_HAVE_VIDEO).
bool video_supported();

struct VideoOptions {
  int fps = 8;
  int scale = 1;  // integer nearest-neighbour upscale, so tiny frames stay viewable
  int crf = 18;   // quality: x264's CRF 0..51 (MP4), libvpx-vp9's 0..63 (WebM)
  VideoFormat format = VideoFormat::Mp4;  // Mp4 or WebM
  std::string comment;  // stored in the `comment` tag when not empty; UTF-8 without NUL bytes, at most 1 MiB
};

class VideoWriter {
 public:
  // Opens the encoder for frames of width x height with `channels` (1 grey or 3 RGB) interleaved bytes, encoded
  // as yuv420p (BT.601, limited range; each 2x2 block's chroma its mean, so a scale of 2 or more keeps every
  // source pixel's colour). H.264 needs even sizes: an odd scaled size is rounded up, the last row or column
  // repeated; VP9 takes any size.
  // Throws Error(Usage) when video support is not built in or an argument is invalid, Error(Output) on I/O.
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

// Reads an MP4 or WebM file as `format` says (libav is told the container; it probes nothing else and opens only
// plain files): the record, and with `decode` every frame as RGB, scaled back to the tagged frame size (each
// block's mean; chroma read per pixel) when the file has ditgen's tag and its coded size fits it. Bounded by the kMaxClip* limits (file size
// included) before anything is allocated; only H.264 and VP9 streams are decoded. Error(Input) for damage or
// anything else.
VideoClip read_av_video(const std::filesystem::path& path, VideoFormat format, bool decode);

struct VideoInfo {
  std::string codec;  // e.g. "h264"
  int width = 0;
  int height = 0;
  int64_t frames = 0;  // decoded frame count
};

// Opens and fully decodes an MP4 or WebM file (used by tests). Throws Error(Input) on failure.
VideoInfo probe_video(const std::filesystem::path& path);

}  // namespace ditgen::io
