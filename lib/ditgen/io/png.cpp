#include "ditgen/io/png.h"

#include <array>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>

#include "ditgen/core/error.h"
#include "ditgen/io/atomic_file.h"
#include "ditgen/io/bounded_file.h"
#include "ditgen/io/untrusted_text.h"

// stb in this translation unit only, with internal linkage: Debian's libstb.so exports the same
// names, and nothing else in ditgen may see these symbols.
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_NO_STDIO  // files are read here, so errors name the path
#include <stb_image.h>

#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO  // bytes go through AtomicFile
#include <stb_image_write.h>

namespace ditgen::io {

namespace {

constexpr uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
constexpr uint32_t kMaxChunkLength = 0x7fffffffu;  // PNG spec: lengths are at most 2^31-1
// What ditgen keeps in memory from a PNG it reads: the text chunks, or the whole file and its pixels.
constexpr std::size_t kMaxTextBytes = std::size_t{64} << 20;
constexpr std::size_t kMaxPngBytes = std::size_t{256} << 20;
constexpr int64_t kMaxPixelBytes = int64_t{1} << 30;

constexpr std::array<uint32_t, 256> make_crc_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t n = 0; n < 256; ++n) {
    uint32_t c = n;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
    table[n] = c;
  }
  return table;
}
constexpr std::array<uint32_t, 256> kCrcTable = make_crc_table();

// The PNG/zlib CRC-32, fed in pieces: crc32_update(kCrcStart, ...) ... ^ kCrcStart.
constexpr uint32_t kCrcStart = 0xffffffffu;
uint32_t crc32_update(uint32_t c, const uint8_t* data, std::size_t size) {
  for (std::size_t i = 0; i < size; ++i) c = kCrcTable[(c ^ data[i]) & 0xff] ^ (c >> 8);
  return c;
}
uint32_t crc32(const uint8_t* data, std::size_t size) { return crc32_update(kCrcStart, data, size) ^ kCrcStart; }

uint32_t read_be32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

void append_be32(std::vector<uint8_t>& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(uint8_t(v >> shift));
}

// Appends one chunk: length, type, data, CRC over type and data.
void append_chunk(std::vector<uint8_t>& out, const char (&type)[5], std::string_view data) {
  append_be32(out, uint32_t(data.size()));
  const std::size_t start = out.size();
  out.insert(out.end(), type, type + 4);
  out.insert(out.end(), data.begin(), data.end());
  append_be32(out, crc32(out.data() + start, 4 + data.size()));
}

bool is_ascii(std::string_view s) {
  for (unsigned char c : s)
    if (c >= 0x80) return false;
  return true;
}

// tEXt stores Latin-1; PngText promises UTF-8.
std::string latin1_to_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (c < 0x80) {
      out += char(c);
    } else {
      out += char(0xc0 | (c >> 6));
      out += char(0x80 | (c & 0x3f));
    }
  }
  return out;
}

// PNG keyword rules: 1..79 printable Latin-1 bytes, no leading, trailing or consecutive spaces.
bool valid_keyword(std::string_view k) {
  if (k.empty() || k.size() > 79 || k.front() == ' ' || k.back() == ' ') return false;
  for (std::size_t i = 0; i < k.size(); ++i) {
    const unsigned char c = k[i];
    if (!((c >= 32 && c <= 126) || c >= 161)) return false;
    if (c == ' ' && k[i + 1] == ' ') return false;  // k.back() != ' ', so i + 1 is in range
  }
  return true;
}

void validate_image(const Image& image) {
  if (image.width <= 0 || image.height <= 0)
    throw Error(ErrorKind::Usage, "PNG image size must be positive, got " + std::to_string(image.width) +
                                      "x" + std::to_string(image.height));
  if (image.channels != 1 && image.channels != 3 && image.channels != 4)
    throw Error(ErrorKind::Usage,
                "PNG images have 1, 3 or 4 channels, got " + std::to_string(image.channels));
  // stb_image_write indexes the filtered rows with int.
  const int64_t row = int64_t(image.width) * image.channels + 1;
  if (row * image.height > INT_MAX)
    throw Error(ErrorKind::Usage, "PNG image is too large: " + std::to_string(image.width) + "x" +
                                      std::to_string(image.height));
  const std::size_t expected = std::size_t(image.width) * image.height * image.channels;
  if (image.pixels.size() != expected)
    throw Error(ErrorKind::Usage, "PNG image has " + std::to_string(image.pixels.size()) +
                                      " bytes, expected " + std::to_string(expected));
}

// The text chunk for one entry: tEXt when the text is ASCII (readable everywhere), iTXt otherwise.
void append_text_chunk(std::vector<uint8_t>& out, const PngText& t) {
  if (!valid_keyword(t.keyword))
    throw Error(ErrorKind::Usage, "invalid PNG text keyword \"" + t.keyword +
                                      "\": it must be 1 to 79 printable Latin-1 characters without leading, "
                                      "trailing or double spaces");
  if (t.text.find('\0') != std::string::npos)
    throw Error(ErrorKind::Usage, "PNG text \"" + t.keyword + "\" contains a NUL byte");
  std::string data = t.keyword;
  data += '\0';
  if (is_ascii(t.text)) {
    data += t.text;
    append_chunk(out, "tEXt", data);
    return;
  }
  if (!is_utf8(t.text)) throw Error(ErrorKind::Usage, "PNG text \"" + t.keyword + "\" is not valid UTF-8");
  // Uncompressed, compression method 0, empty language tag, empty translated keyword.
  data.append("\0\0\0\0", 4);
  data += t.text;
  append_chunk(out, "iTXt", data);
}

// Opens a regular file and checks the signature before anything else is read.
RegularFile open_png(const std::filesystem::path& path) {
  RegularFile f = open_regular_file(path, ErrorKind::Input);
  uint8_t signature[sizeof kSignature];
  if (!read_exact(f.file.get(), signature, sizeof signature) ||
      std::memcmp(signature, kSignature, sizeof kSignature) != 0)
    throw Error(ErrorKind::Input, path.string() + " is not a PNG file");
  return f;
}

[[noreturn]] void corrupt(const std::filesystem::path& path, const std::string& what) {
  throw Error(ErrorKind::Input, "corrupt PNG file " + path.string() + ": " + what);
}

// Appends the text of one tEXt or iTXt chunk (zlib-compressed iTXt text is not read).
void parse_text_chunk(const std::filesystem::path& path, const std::string& name, std::string_view data,
                      std::vector<PngText>& texts) {
  const std::size_t key_end = data.find('\0');
  if (key_end == std::string_view::npos || key_end == 0 || key_end > 79)
    corrupt(path, "malformed " + name + " keyword");
  std::string keyword(data.substr(0, key_end));
  if (name == "tEXt") {
    texts.push_back({std::move(keyword), latin1_to_utf8(data.substr(key_end + 1))});
    return;
  }
  // iTXt: keyword\0, compression flag, method, language\0, translated keyword\0, text.
  const std::size_t flags = key_end + 1;
  const std::size_t lang_end = data.size() >= flags + 2 ? data.find('\0', flags + 2) : std::string_view::npos;
  const std::size_t translated_end =
      lang_end == std::string_view::npos ? lang_end : data.find('\0', lang_end + 1);
  if (translated_end == std::string_view::npos) corrupt(path, "malformed iTXt chunk");
  if (data[flags] != 0) return;
  texts.push_back({std::move(keyword), std::string(data.substr(translated_end + 1))});
}

}  // namespace

void write_png(const std::filesystem::path& path, const Image& image, const std::vector<PngText>& texts) {
  validate_image(image);
  std::vector<uint8_t> chunks;
  for (const PngText& t : texts) append_text_chunk(chunks, t);

  int size = 0;
  std::unique_ptr<unsigned char, void (*)(unsigned char*)> png(
      stbi_write_png_to_mem(image.pixels.data(), image.width * image.channels, image.width, image.height,
                            image.channels, &size),
      [](unsigned char* p) { STBIW_FREE(p); });
  if (!png) throw Error(ErrorKind::Output, "cannot encode " + path.string() + ": out of memory");

  // stb writes signature, IHDR (13 data bytes), IDAT, IEND. The text goes right after IHDR,
  // before the image data: readers such as Pillow report only the chunks before IDAT until
  // the pixels are decoded, and A1111's "PNG Info" relies on that.
  constexpr int kAfterIhdr = 8 + 12 + 13;
  if (size < kAfterIhdr || std::memcmp(png.get() + 12, "IHDR", 4) != 0)
    throw Error(ErrorKind::Runtime, "stb_image_write produced an unexpected PNG layout");

  AtomicFile file(path);
  file.write(png.get(), kAfterIhdr);
  file.write(chunks.data(), chunks.size());
  file.write(png.get() + kAfterIhdr, std::size_t(size - kAfterIhdr));
  file.commit();
}

Image read_png(const std::filesystem::path& path) {
  RegularFile f = open_png(path);
  if (f.size > kMaxPngBytes)
    throw Error(ErrorKind::Input, path.string() + ": PNG file larger than " + std::to_string(kMaxPngBytes >> 20) +
                                      " MiB");
  std::vector<uint8_t> bytes(kSignature, kSignature + sizeof kSignature);
  bytes.resize(f.size);
  if (!read_exact(f.file.get(), bytes.data() + sizeof kSignature, bytes.size() - sizeof kSignature))
    throw Error(ErrorKind::Input, "cannot read " + path.string() + ": read failed");
  const int length = int(bytes.size());
  int width = 0, height = 0, channels = 0;
  if (!stbi_info_from_memory(bytes.data(), length, &width, &height, &channels))
    throw Error(ErrorKind::Input, "cannot decode " + path.string() + ": " + stbi_failure_reason());
  // Image has no grey+alpha layout; widen it to RGBA.
  const int wanted = channels == 2 ? 4 : channels;
  if (int64_t(width) * height * wanted > kMaxPixelBytes)
    throw Error(ErrorKind::Input, path.string() + ": " + std::to_string(width) + "x" + std::to_string(height) +
                                      " pixels is larger than ditgen reads");
  std::unique_ptr<stbi_uc, void (*)(void*)> pixels(
      stbi_load_from_memory(bytes.data(), length, &width, &height, &channels, wanted), &stbi_image_free);
  if (!pixels) throw Error(ErrorKind::Input, "cannot decode " + path.string() + ": " + stbi_failure_reason());
  Image image;
  image.width = width;
  image.height = height;
  image.channels = wanted;
  image.pixels.assign(pixels.get(), pixels.get() + std::size_t(width) * height * wanted);
  return image;
}

std::vector<PngText> read_png_text(const std::filesystem::path& path) {
  RegularFile f = open_png(path);
  std::FILE* file = f.file.get();
  std::vector<PngText> texts;
  std::size_t text_bytes = 0;  // kept so far, bounded by kMaxTextBytes
  std::vector<uint8_t> data;   // the current text chunk's data
  for (;;) {
    // A file that ends before IEND was cut short.
    uint8_t head[8];
    if (!read_exact(file, head, sizeof head)) corrupt(path, "truncated (no IEND chunk)");
    const uint32_t length = read_be32(head);
    if (length > kMaxChunkLength) corrupt(path, "chunk length out of range");
    const std::string name(reinterpret_cast<const char*>(head + 4), 4);
    for (char c : name)
      if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))) corrupt(path, "invalid chunk type");
    const bool is_text = name == "tEXt" || name == "iTXt";
    uint32_t crc = crc32_update(kCrcStart, head + 4, 4);
    if (is_text) {
      // Text is kept, so it is bounded before it is read; other chunks stream through the CRC.
      if (length > kMaxTextBytes - text_bytes)
        corrupt(path, "text chunks larger than " + std::to_string(kMaxTextBytes >> 20) + " MiB in all");
      text_bytes += length;
      data.resize(length);
      if (!read_exact(file, data.data(), length)) corrupt(path, "truncated");
      crc = crc32_update(crc, data.data(), length);
    } else {
      uint8_t buffer[65536];
      for (uint32_t left = length; left > 0;) {
        const std::size_t piece = std::min<std::size_t>(left, sizeof buffer);
        if (!read_exact(file, buffer, piece)) corrupt(path, "truncated");
        crc = crc32_update(crc, buffer, piece);
        left -= uint32_t(piece);
      }
    }
    uint8_t stored[4];
    if (!read_exact(file, stored, sizeof stored)) corrupt(path, "truncated");
    if (read_be32(stored) != (crc ^ kCrcStart)) corrupt(path, "CRC mismatch in " + name + " chunk");
    if (name == "IEND") break;
    if (is_text) parse_text_chunk(path, name, {reinterpret_cast<const char*>(data.data()), data.size()}, texts);
  }
  return texts;
}

}  // namespace ditgen::io
