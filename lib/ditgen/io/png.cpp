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

// The PNG/zlib CRC-32 of `size` bytes.
uint32_t crc32(const uint8_t* data, std::size_t size) {
  uint32_t c = 0xffffffffu;
  for (std::size_t i = 0; i < size; ++i) c = kCrcTable[(c ^ data[i]) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

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

// Well-formed UTF-8: no overlong forms, surrogates or code points past U+10FFFF.
bool is_utf8(std::string_view s) {
  static constexpr uint32_t kMinCodePoint[4] = {0, 0x80, 0x800, 0x10000};
  std::size_t i = 0;
  while (i < s.size()) {
    const unsigned char lead = s[i];
    std::size_t extra;
    uint32_t cp;
    if (lead < 0x80) {
      ++i;
      continue;
    } else if ((lead & 0xe0) == 0xc0) {
      extra = 1, cp = lead & 0x1f;
    } else if ((lead & 0xf0) == 0xe0) {
      extra = 2, cp = lead & 0x0f;
    } else if ((lead & 0xf8) == 0xf0) {
      extra = 3, cp = lead & 0x07;
    } else {
      return false;
    }
    if (s.size() - i <= extra) return false;
    for (std::size_t k = 1; k <= extra; ++k) {
      const unsigned char b = s[i + k];
      if ((b & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (b & 0x3f);
    }
    if (cp < kMinCodePoint[extra] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += extra + 1;
  }
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

std::vector<uint8_t> read_file(const std::filesystem::path& path) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) throw Error(ErrorKind::Input, "cannot read " + path.string() + ": " + std::strerror(errno));
  std::vector<uint8_t> bytes;
  uint8_t buffer[65536];
  std::size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, f.get())) > 0)
    bytes.insert(bytes.end(), buffer, buffer + n);
  if (std::ferror(f.get())) throw Error(ErrorKind::Input, "cannot read " + path.string() + ": read failed");
  return bytes;
}

[[noreturn]] void corrupt(const std::filesystem::path& path, const std::string& what) {
  throw Error(ErrorKind::Input, "corrupt PNG file " + path.string() + ": " + what);
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
  const std::vector<uint8_t> bytes = read_file(path);
  if (bytes.size() > std::size_t(INT_MAX))
    throw Error(ErrorKind::Input, "PNG file is too large: " + path.string());
  const int length = int(bytes.size());
  int width = 0, height = 0, channels = 0;
  if (!stbi_info_from_memory(bytes.data(), length, &width, &height, &channels))
    throw Error(ErrorKind::Input, "cannot decode " + path.string() + ": " + stbi_failure_reason());
  // Image has no grey+alpha layout; widen it to RGBA.
  const int wanted = channels == 2 ? 4 : channels;
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
  const std::vector<uint8_t> bytes = read_file(path);
  if (bytes.size() < sizeof kSignature || std::memcmp(bytes.data(), kSignature, sizeof kSignature) != 0)
    throw Error(ErrorKind::Input, path.string() + " is not a PNG file");

  std::vector<PngText> texts;
  std::size_t pos = sizeof kSignature;
  for (;;) {
    // A file that ends before IEND was cut short.
    if (bytes.size() - pos < 12) corrupt(path, "truncated (no IEND chunk)");
    const uint32_t length = read_be32(&bytes[pos]);
    if (length > kMaxChunkLength) corrupt(path, "chunk length out of range");
    if (length > bytes.size() - pos - 12) corrupt(path, "truncated");
    const uint8_t* type = &bytes[pos + 4];
    const std::string_view name(reinterpret_cast<const char*>(type), 4);
    for (char c : name)
      if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))) corrupt(path, "invalid chunk type");
    if (read_be32(type + 4 + length) != crc32(type, 4 + std::size_t(length)))
      corrupt(path, "CRC mismatch in " + std::string(name) + " chunk");
    const std::string_view data(reinterpret_cast<const char*>(type + 4), length);
    pos += 12 + std::size_t(length);
    if (name == "IEND") break;

    if (name != "tEXt" && name != "iTXt") continue;
    const std::size_t key_end = data.find('\0');
    if (key_end == std::string_view::npos || key_end == 0 || key_end > 79)
      corrupt(path, "malformed " + std::string(name) + " keyword");
    std::string keyword(data.substr(0, key_end));
    if (name == "tEXt") {
      texts.push_back({std::move(keyword), latin1_to_utf8(data.substr(key_end + 1))});
      continue;
    }
    // iTXt: keyword\0, compression flag, method, language\0, translated keyword\0, text.
    const std::size_t flags = key_end + 1;
    const std::size_t lang_end =
        data.size() >= flags + 2 ? data.find('\0', flags + 2) : std::string_view::npos;
    const std::size_t translated_end =
        lang_end == std::string_view::npos ? lang_end : data.find('\0', lang_end + 1);
    if (translated_end == std::string_view::npos) corrupt(path, "malformed iTXt chunk");
    if (data[flags] != 0) continue;  // zlib-compressed text is not read
    texts.push_back({std::move(keyword), std::string(data.substr(translated_end + 1))});
  }
  return texts;
}

}  // namespace ditgen::io
