// Video clips with their generation record, in the container an output's name (or an explicit format) asks for:
//   MP4 (H.264, yuv420p) and WebM (VP9, yuv420p) through libav (av_video.h), when the build has FFmpeg, frames
//     scaled up by an integer (nearest neighbour) and back down when read; the record goes into the `comment` tag;
//   animated GIF (gif.h, no FFmpeg): looping, delays from the fps, the record in a Comment Extension;
//   a folder of PNG frames (png_frames.h, no FFmpeg): the record in every frame's "ditgen" text chunk.
// The record is a text (ditgen's JSON record; the pipeline owns its meaning): UTF-8 of at most 1 MiB, no NUL.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "ditgen/io/av_video.h"
#include "ditgen/io/clip.h"
#include "ditgen/io/png.h"

namespace ditgen::io {

struct VideoWriteOptions {
  int crf = -1;                      // MP4/WebM quality (x264 CRF 0..51, libvpx-vp9 CRF 0..63); -1: 18 and 24
  int scale = 0;  // MP4/WebM upscale; 0: even (odd ones mix neighbours' chroma), the longer side >= 256 pixels
  std::vector<PngText> frame_texts;  // PNG frames: more text chunks for every frame (e.g. A1111 "parameters")
};

// Everything write_video checks that does not need the pixels, for a run to check before any compute.
// Error(Usage) with one line: a format this build lacks (MP4/WebM without FFmpeg: it names .gif and a frames
// folder as what works), frame count < 1, size outside 1..16384, channels other than 1 or 3, fps outside 1..1000
// (GIF: 1..50), an output that exists as something it may not replace (a folder for a file; a file, or a folder
// with other files, for PNG frames).
void check_video_output(const std::filesystem::path& path, VideoFormat format, int64_t frame_count, int width,
                        int height, int channels, int fps);

// Writes frames (frame_count x height x width x channels bytes, F >= 1, channels 1 grey or 3 RGB) at `fps` with
// `record` as `format`, atomically: a file appears whole or not at all; a frames folder is assembled beside its
// name and renamed into place. Error(Usage) as check_video_output and for a record that is not UTF-8 text of at
// most 1 MiB, Error(Output) when it cannot be written (nothing is left behind).
void write_video(const std::filesystem::path& path, const std::vector<uint8_t>& frames, int width, int height,
                 int channels, int fps, const std::string& record, VideoFormat format,
                 const VideoWriteOptions& options = {});

// The clip format of what is at `path`, from its content (a folder is PNG frames; a file's first bytes say GIF,
// MP4 or WebM), whatever its name; nullopt for another file. Error(Input) when it cannot be read or is not a
// regular file or folder.
std::optional<VideoFormat> detect_video_format(const std::filesystem::path& path);

// Decodes a clip (format from detect_video_format): every frame as RGB, fps, record. Untrusted files are bounded
// (kMaxClip* in clip.h) before anything is allocated. Error(Input) for damage or a file that is not a clip;
// Error(Usage) for MP4/WebM in a build without FFmpeg.
VideoClip read_video(const std::filesystem::path& path);

// Only the record of a clip ("" when it has none), without decoding the frames where the container allows.
std::string read_video_record(const std::filesystem::path& path);

}  // namespace ditgen::io
