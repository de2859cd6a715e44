// PNG text chunks (what `ditgen metadata`, `--from` and `--resume` read): any file yields its tEXt/iTXt
// chunks or an ditgen::Error; never a crash. A "ditgen" chunk is parsed as the record the CLI reads and
// printed again, as `metadata` does (so a record nested too deep must be refused, not overflow the stack). Inputs whose first byte is even are assembled into chunks
// with valid CRCs, so the fuzzer reaches the chunk contents instead of stopping at checksums.
#include <cstring>
#include <string>
#include <vector>

#include "ditgen/core/error.h"
#include "ditgen/io/json_limits.h"
#include "ditgen/io/png.h"
#include "fuzz_util.h"

namespace {

uint32_t crc32(const uint8_t* p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
  }
  return ~c;
}

void put_be32(std::vector<uint8_t>& out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<uint8_t>(v >> s));
}

// Chunks from the input: [type selector][length byte][data...], repeated.
std::vector<uint8_t> assemble(const uint8_t* data, size_t size) {
  static const char* types[] = {"IHDR", "tEXt", "iTXt", "zTXt", "IDAT", "IEND", "tEXt", "iTXt"};
  std::vector<uint8_t> out{0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  size_t pos = 1;
  while (pos + 2 <= size) {
    const char* type = types[data[pos] % 8];
    const size_t length = std::min<size_t>(data[pos + 1] * 4u, size - pos - 2);
    pos += 2;
    std::vector<uint8_t> chunk(type, type + 4);
    chunk.insert(chunk.end(), data + pos, data + pos + length);
    pos += length;
    put_be32(out, static_cast<uint32_t>(length));
    out.insert(out.end(), chunk.begin(), chunk.end());
    put_be32(out, crc32(chunk.data(), chunk.size()));
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ditgen;
  std::vector<uint8_t> file = size && data[0] % 2 == 0 ? assemble(data, size) : std::vector<uint8_t>(data, data + size);
  try {
    for (const io::PngText& t : io::read_png_text(fuzz::write_scratch(file.data(), file.size()))) {
      if (t.keyword.empty() || t.keyword.size() > 79) __builtin_trap();
      if (t.keyword == "ditgen") fuzz::print_json(io::parse_json(t.text, ErrorKind::Input, "record"));
    }
  } catch (const Error&) {
  }
  return 0;
}
