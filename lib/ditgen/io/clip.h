// What a video clip is in memory, which container holds it, and how an output name chooses the container.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ditgen::io {

// MP4 (H.264) and WebM (VP9) need FFmpeg's libav at build time; GIF and a folder of PNG frames never do.
enum class VideoFormat { Mp4, WebM, Gif, PngFrames };

// "mp4", "webm", "gif", "png" (a folder of PNG frames): the names video_format_for takes.
const char* video_format_name(VideoFormat format);

// Whether this build writes and reads `format`.
bool video_format_supported(VideoFormat format);

// The format of an output named `path`: from `explicit_format` (mp4, webm, gif, png or frames; any case; "" for
// none) or else the name: .mp4, .webm, .gif (any case), or a folder of PNG frames for a name ending in '/' or an
// existing folder. Error(Usage), one line listing the choices, for a name or format ditgen does not write, or an
// explicit format the name contradicts (names say what is written: an explicit gif needs a .gif name, PNG frames
// a name without an extension). Does not check video_format_supported.
VideoFormat video_format_for(const std::filesystem::path& path, const std::string& explicit_format = "");
// The container a file name's extension names (.mp4, .webm, .gif, any case), or nullopt.
std::optional<VideoFormat> video_format_of_extension(const std::filesystem::path& path);
// The container a format word names (mp4, webm, gif, png or frames, any case), or nullopt.
std::optional<VideoFormat> parse_video_format(const std::string& word);

// The file format the first bytes of a file show: GIF87a/GIF89a, an ISO media file ("ftyp" at byte 4: MP4) or
// EBML (Matroska/WebM); nullopt for anything else (at least 12 bytes are needed to tell).
std::optional<VideoFormat> sniff_video_format(std::string_view head);

// A decoded clip: every frame as 8-bit RGB (grey clips come back with three equal channels).
struct VideoClip {
  VideoFormat format = VideoFormat::Mp4;
  int width = 0;
  int height = 0;
  int coded_width = 0;   // MP4/WebM: the size in the file (ditgen scales small frames up); else width
  int coded_height = 0;
  int64_t frames = 0;
  double fps = 0;               // as stored: MP4/WebM frame rate, GIF delays (to 1/100 s), PNG frames' record
  std::vector<uint8_t> pixels;  // frames x height x width x 3
  std::string record;           // the generation record as stored, "" when there is none
  std::string codec;            // "h264", "vp9", "gif" or "png"
};

// What ditgen reads from an untrusted clip at most: frames, side, decoded RGB bytes, and the record.
constexpr int kMaxClipSide = 16384;
constexpr int64_t kMaxClipFrames = 100000;
constexpr int64_t kMaxClipBytes = int64_t{1} << 30;
constexpr std::size_t kMaxRecordBytes = std::size_t{1} << 20;

}  // namespace ditgen::io
