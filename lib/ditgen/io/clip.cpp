#include "ditgen/io/clip.h"

#include <algorithm>
#include <cctype>
#include <optional>
#include <system_error>

#include "ditgen/core/error.h"
#include "ditgen/io/untrusted_text.h"

namespace ditgen::io {

namespace {

constexpr const char* kChoices =
    "name it .mp4 (H.264), .webm (VP9), .gif, or a folder ending in '/' for PNG frames (formats: mp4, webm, gif, png)";

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return s;
}

// The format a name alone says, if any.
std::optional<VideoFormat> format_of_name(const std::filesystem::path& path) {
  if (const auto by_extension = video_format_of_extension(path)) return by_extension;
  std::error_code ec;
  if (!path.has_filename() || std::filesystem::is_directory(path, ec)) return VideoFormat::PngFrames;
  return std::nullopt;
}

}  // namespace

std::optional<VideoFormat> video_format_of_extension(const std::filesystem::path& path) {
  const std::string ext = lower(path.extension().string());
  if (ext == ".mp4") return VideoFormat::Mp4;
  if (ext == ".webm") return VideoFormat::WebM;
  if (ext == ".gif") return VideoFormat::Gif;
  return std::nullopt;
}

std::optional<VideoFormat> parse_video_format(const std::string& word) {
  const std::string wanted = lower(word);
  if (wanted == "mp4") return VideoFormat::Mp4;
  if (wanted == "webm") return VideoFormat::WebM;
  if (wanted == "gif") return VideoFormat::Gif;
  if (wanted == "png" || wanted == "frames") return VideoFormat::PngFrames;
  return std::nullopt;
}

const char* video_format_name(VideoFormat format) {
  switch (format) {
    case VideoFormat::Mp4:
      return "mp4";
    case VideoFormat::WebM:
      return "webm";
    case VideoFormat::Gif:
      return "gif";
    case VideoFormat::PngFrames:
      return "png";
  }
  return "?";
}

bool video_format_supported(VideoFormat format) {
#ifdef DITGEN_HAVE_VIDEO
  (void)format;
  return true;
#else
  return format == VideoFormat::Gif || format == VideoFormat::PngFrames;
#endif
}

std::optional<VideoFormat> sniff_video_format(std::string_view head) {
  if (head.size() >= 6 && (head.substr(0, 6) == "GIF87a" || head.substr(0, 6) == "GIF89a")) return VideoFormat::Gif;
  if (head.size() >= 12 && head.substr(4, 4) == "ftyp") return VideoFormat::Mp4;
  if (head.size() >= 4 && head.substr(0, 4) == "\x1a\x45\xdf\xa3") return VideoFormat::WebM;
  return std::nullopt;
}

VideoFormat video_format_for(const std::filesystem::path& path, const std::string& explicit_format) {
  if (path.empty()) throw Error(ErrorKind::Usage, std::string("a video needs an output name: ") + kChoices);
  const std::string name = excerpt(path.string());
  const std::optional<VideoFormat> named = format_of_name(path);
  if (explicit_format.empty()) {
    if (named) return *named;
    throw Error(ErrorKind::Usage, "cannot tell the video format of " + name + ": " + kChoices);
  }
  const std::optional<VideoFormat> parsed = parse_video_format(explicit_format);
  if (!parsed)
    throw Error(ErrorKind::Usage,
                "unknown video format '" + excerpt(explicit_format) + "': choose mp4, webm, gif or png (PNG frames)");
  const VideoFormat format = *parsed;
  if (named ? *named == format : format == VideoFormat::PngFrames && path.extension().empty()) return format;
  if (format == VideoFormat::PngFrames)
    throw Error(ErrorKind::Usage, "PNG frames go to a folder: name it without an extension or end it in '/', not " + name);
  throw Error(ErrorKind::Usage, std::string("a ") + video_format_name(format) + " video's name ends in ." +
                                    video_format_name(format) + ", not " + name);
}

}  // namespace ditgen::io
