#include "ditgen/io/png_frames.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <system_error>

#include "ditgen/core/error.h"
#include "ditgen/io/json_limits.h"
#include "ditgen/io/untrusted_text.h"

namespace ditgen::io {

namespace fs = std::filesystem;

namespace {

constexpr const char* kRecordKeyword = "ditgen";
constexpr const char* kFrameKeyword = "ditgen-frame";
constexpr std::size_t kMaxEntries = 1000000;  // names listed in a folder before it is refused

// The folder itself for a name that ends in '/'.
fs::path folder_path(const fs::path& folder) { return folder.has_filename() ? folder : folder.parent_path(); }

// The index of a name that is exactly png_frame_name(index).
std::optional<int64_t> frame_index(const std::string& name) {
  if (name.size() < 14 || name.compare(0, 6, "frame-") != 0 || name.compare(name.size() - 4, 4, ".png") != 0)
    return std::nullopt;
  const std::string digits = name.substr(6, name.size() - 10);
  if (digits.size() > 9 || !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  const int64_t index = std::stoll(digits);
  if (png_frame_name(index) != name) return std::nullopt;
  return index;
}

// The frame files of a folder, by index; Error(kind) when it cannot be listed or holds too many names.
std::vector<int64_t> frame_indices(const fs::path& folder, ErrorKind kind, std::string* other = nullptr) {
  std::vector<int64_t> indices;
  std::error_code ec;
  std::size_t entries = 0;
  for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
    if (++entries > kMaxEntries) throw Error(kind, folder.string() + " holds more than a million names");
    const std::string name = it->path().filename().string();
    const std::optional<int64_t> index = frame_index(name);
    std::error_code type_ec;
    if (index && it->symlink_status(type_ec).type() == fs::file_type::regular) indices.push_back(*index);
    else if (other && other->empty()) *other = name;
  }
  if (ec) throw Error(kind, "cannot read " + folder.string() + ": " + ec.message());
  std::sort(indices.begin(), indices.end());
  return indices;
}

// Removes a folder of plain files that ditgen made (std::filesystem::remove_all is avoided: see lib/CMakeLists.txt).
void remove_folder(const fs::path& folder) noexcept {
  std::error_code ec;
  std::vector<fs::path> files;
  for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) files.push_back(it->path());
  for (const fs::path& f : files) fs::remove(f, ec);
  fs::remove(folder, ec);
}

// A hidden folder beside `target` (.NAME.SUFFIX-XXXXXX), removed with everything in it unless released.
class SiblingFolder {
 public:
  SiblingFolder(const fs::path& target, const std::string& suffix) {
    const fs::path parent = target.parent_path().empty() ? fs::path(".") : target.parent_path();
    std::string pattern = (parent / ("." + target.filename().string() + "." + suffix + "-XXXXXX")).string();
    if (!::mkdtemp(pattern.data()))
      throw Error(ErrorKind::Output, "cannot write " + target.string() + ": cannot create a folder in " +
                                         parent.string() + ": " + std::strerror(errno));
    path_ = pattern;
    ::chmod(path_.c_str(), 0755);  // mkdtemp makes 0700; outputs are ordinary folders
  }
  ~SiblingFolder() {
    if (!path_.empty()) remove_folder(path_);
  }
  SiblingFolder(const SiblingFolder&) = delete;
  SiblingFolder& operator=(const SiblingFolder&) = delete;
  const fs::path& path() const { return path_; }
  void release() { path_.clear(); }

 private:
  fs::path path_;
};

[[noreturn]] void rename_failed(const fs::path& target, int err) {
  throw Error(ErrorKind::Output, "cannot write " + target.string() + ": rename failed: " + std::strerror(err));
}

// A "ditgen-frame" value: an integer field within lo..hi.
int64_t info_field(const nlohmann::json& info, const char* key, int64_t lo, int64_t hi, const std::string& where) {
  const auto it = info.find(key);
  if (it == info.end() || !it->is_number_integer() || it->get<int64_t>() < lo || it->get<int64_t>() > hi)
    throw Error(ErrorKind::Input, where + ": its ditgen-frame " + key + " is missing or out of range");
  return it->get<int64_t>();
}

}  // namespace

std::string png_frame_name(int64_t index) {
  char name[40];
  std::snprintf(name, sizeof name, "frame-%04lld.png", static_cast<long long>(index));
  return name;
}

void check_png_frames_target(const fs::path& folder) {
  const fs::path target = folder_path(folder);
  std::error_code ec;
  const fs::file_status status = fs::symlink_status(target, ec);
  if (status.type() == fs::file_type::not_found) return;
  if (status.type() != fs::file_type::directory)
    throw Error(ErrorKind::Usage, "cannot write PNG frames into " + target.string() + ": it exists and is not a folder");
  std::string other;
  frame_indices(target, ErrorKind::Usage, &other);
  if (!other.empty())
    throw Error(ErrorKind::Usage, "cannot write PNG frames into " + target.string() + ": it holds " + excerpt(other) +
                                      ", and ditgen replaces only a folder of frames");
}

void write_png_frames(const fs::path& folder, const uint8_t* frames, int64_t frame_count, int width, int height,
                      int channels, int fps, const std::string& record, const std::vector<PngText>& extra_texts) {
  const fs::path target = folder_path(folder);
  auto usage = [&](const std::string& what) { return Error(ErrorKind::Usage, "PNG frames " + target.string() + ": " + what); };
  if (!frames || frame_count < 1 || frame_count > kMaxClipFrames)
    throw usage("the frame count must be in 1.." + std::to_string(kMaxClipFrames));
  if (width < 1 || height < 1 || width > kMaxClipSide || height > kMaxClipSide)
    throw usage("frame size " + std::to_string(width) + "x" + std::to_string(height) + " is outside 1.." +
                std::to_string(kMaxClipSide));
  if (channels != 1 && channels != 3) throw usage("frames have 1 (grey) or 3 (RGB) channels, got " + std::to_string(channels));
  if (fps < 1 || fps > 1000) throw usage("fps must be in 1..1000, got " + std::to_string(fps));
  if (record.size() > kMaxRecordBytes || !is_utf8(record)) throw usage("the record must be UTF-8 of at most 1 MiB");
  for (const PngText& t : extra_texts)
    if (t.keyword == kRecordKeyword || t.keyword == kFrameKeyword) throw usage("text keyword " + t.keyword + " is ditgen's");
  check_png_frames_target(target);

  SiblingFolder temp(target, "tmp");
  std::vector<PngText> texts = extra_texts;
  if (!record.empty()) texts.push_back({kRecordKeyword, record});
  texts.push_back({kFrameKeyword, ""});
  const std::size_t frame_bytes = std::size_t(width) * std::size_t(height) * std::size_t(channels);
  Image image{width, height, channels, {}};
  for (int64_t i = 0; i < frame_count; ++i) {
    image.pixels.assign(frames + std::size_t(i) * frame_bytes, frames + std::size_t(i + 1) * frame_bytes);
    texts.back().text = nlohmann::json{{"index", i}, {"frames", frame_count}, {"fps", fps}}.dump();
    write_png(temp.path() / png_frame_name(i), image, texts);
  }

  std::error_code ec;
  if (fs::symlink_status(target, ec).type() == fs::file_type::directory && !fs::is_empty(target, ec)) {
    // An earlier clip: moved aside (into an empty folder, which rename replaces), then removed.
    SiblingFolder old(target, "old");
    if (::rename(target.c_str(), old.path().c_str()) != 0) rename_failed(target, errno);
    if (::rename(temp.path().c_str(), target.c_str()) != 0) {
      const int err = errno;
      if (::rename(old.path().c_str(), target.c_str()) == 0) old.release();
      rename_failed(target, err);
    }
  } else if (::rename(temp.path().c_str(), target.c_str()) != 0) {  // absent, or an empty folder (replaced)
    rename_failed(target, errno);
  }
  temp.release();
}

VideoClip read_png_frames(const fs::path& folder, bool decode) {
  const fs::path dir = folder_path(folder);
  std::error_code ec;
  const fs::file_status status = fs::status(dir, ec);
  if (status.type() == fs::file_type::not_found)
    throw Error(ErrorKind::Input, "cannot read " + dir.string() + ": no such folder");
  if (status.type() != fs::file_type::directory) throw Error(ErrorKind::Input, dir.string() + " is not a folder");
  const std::vector<int64_t> indices = frame_indices(dir, ErrorKind::Input);
  if (indices.empty()) throw Error(ErrorKind::Input, dir.string() + " holds no PNG frames (frame-0000.png, ...)");
  if (int64_t(indices.size()) > kMaxClipFrames)
    throw Error(ErrorKind::Input, dir.string() + " holds more than " + std::to_string(kMaxClipFrames) + " frames");
  for (std::size_t i = 0; i < indices.size(); ++i)
    if (indices[i] != int64_t(i))
      throw Error(ErrorKind::Input, dir.string() + " lacks " + png_frame_name(int64_t(i)));

  VideoClip clip;
  clip.format = VideoFormat::PngFrames;
  clip.codec = "png";
  clip.frames = int64_t(indices.size());
  const int64_t frames_to_read = decode ? clip.frames : 1;
  for (int64_t i = 0; i < frames_to_read; ++i) {
    const fs::path file = dir / png_frame_name(i);
    const std::string where = file.string();
    std::optional<nlohmann::json> info;
    std::string record;
    for (const PngText& t : read_png_text(file)) {
      if (t.keyword == kFrameKeyword && !info) info = parse_json(t.text, ErrorKind::Input, where + ": its ditgen-frame chunk");
      if (t.keyword == kRecordKeyword && record.empty()) record = t.text;
    }
    if (!info || !info->is_object())
      throw Error(ErrorKind::Input, where + " has no ditgen-frame chunk (not a frames folder ditgen wrote)");
    if (info_field(*info, "index", 0, kMaxClipFrames, where) != i)
      throw Error(ErrorKind::Input, where + ": its ditgen-frame index does not match its name");
    if (info_field(*info, "frames", 1, kMaxClipFrames, where) != clip.frames)
      throw Error(ErrorKind::Input, where + " belongs to a clip of another length than the " +
                                        std::to_string(clip.frames) + " frames in " + dir.string());
    const double fps = double(info_field(*info, "fps", 1, 1000, where));
    if (record.size() > kMaxRecordBytes) throw Error(ErrorKind::Input, where + ": its record is larger than 1 MiB");
    if (i == 0) {
      clip.fps = fps;
      clip.record = record;
    } else if (fps != clip.fps || record != clip.record) {
      throw Error(ErrorKind::Input, where + " belongs to another clip than frame-0000.png (its record or fps differ)");
    }
    if (!decode) continue;

    const Image image = read_png(file);
    if (i == 0) {
      if (image.width > kMaxClipSide || image.height > kMaxClipSide ||
          clip.frames * image.width * image.height * 3 > kMaxClipBytes)
        throw Error(ErrorKind::Input, dir.string() + ": " + std::to_string(clip.frames) + " frames of " +
                                          std::to_string(image.width) + "x" + std::to_string(image.height) +
                                          " are more than ditgen reads");
      clip.width = clip.coded_width = image.width;
      clip.height = clip.coded_height = image.height;
      clip.pixels.reserve(std::size_t(clip.frames) * std::size_t(image.width) * std::size_t(image.height) * 3);
    } else if (image.width != clip.width || image.height != clip.height) {
      throw Error(ErrorKind::Input, where + " is not the size of frame-0000.png");
    }
    if (image.channels != 1 && image.channels != 3)
      throw Error(ErrorKind::Input, where + " has an alpha channel (ditgen writes grey or RGB frames)");
    for (std::size_t p = 0; p < image.pixels.size(); p += std::size_t(image.channels))
      for (int c = 0; c < 3; ++c) clip.pixels.push_back(image.pixels[p + std::size_t(image.channels == 1 ? 0 : c)]);
  }
  return clip;
}

}  // namespace ditgen::io
