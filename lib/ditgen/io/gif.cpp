#include "ditgen/io/gif.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <unordered_map>

#include "ditgen/core/error.h"
#include "ditgen/io/atomic_file.h"
#include "ditgen/io/bounded_file.h"

namespace ditgen::io {

namespace {

constexpr int kMaxCodes = 4096;  // LZW codes are at most 12 bits
constexpr int kMaxGifSide = 65535;
constexpr int kMaxFps = 50;
constexpr std::size_t kMaxComment = std::size_t{1} << 20;

// ---- Writing ----

void put16(std::vector<uint8_t>& out, int v) {
  out.push_back(uint8_t(v & 0xff));
  out.push_back(uint8_t((v >> 8) & 0xff));
}

// Data as GIF sub-blocks (a length byte, then up to 255 bytes) and the zero-length terminator.
void put_sub_blocks(std::vector<uint8_t>& out, const uint8_t* data, std::size_t size) {
  for (std::size_t at = 0; at < size; at += 255) {
    const std::size_t n = std::min<std::size_t>(255, size - at);
    out.push_back(uint8_t(n));
    out.insert(out.end(), data + at, data + at + n);
  }
  out.push_back(0);
}

int bit_length(unsigned v) {
  int bits = 0;
  for (; v; v >>= 1) ++bits;
  return bits;
}

// Entries in a colour table: a power of two, 2..256, holding `colours`.
int table_bits(std::size_t colours) { return std::max(1, bit_length(unsigned(std::max<std::size_t>(colours, 2) - 1))); }

void put_table(std::vector<uint8_t>& out, const std::vector<uint32_t>& palette, int bits) {
  for (int i = 0; i < (1 << bits); ++i) {
    const uint32_t c = i < int(palette.size()) ? palette[std::size_t(i)] : 0;
    out.push_back(uint8_t(c >> 16));
    out.push_back(uint8_t(c >> 8));
    out.push_back(uint8_t(c));
  }
}

// LZW codes packed least significant bit first, as GIF wants.
class BitWriter {
 public:
  void put(unsigned code, int width) {
    acc_ |= uint64_t(code) << used_;
    used_ += width;
    while (used_ >= 8) {
      bytes.push_back(uint8_t(acc_));
      acc_ >>= 8;
      used_ -= 8;
    }
  }
  void flush() {
    if (used_ > 0) bytes.push_back(uint8_t(acc_));
    acc_ = 0;
    used_ = 0;
  }
  std::vector<uint8_t> bytes;

 private:
  uint64_t acc_ = 0;
  int used_ = 0;
};

// GIF's LZW over colour indices. The decoder adds a table entry one code later than the encoder, so each
// code's width is the bit length of the last entry the decoder will hold when it reads it: bit_length(next - 1).
// When the table is full the encoder sends a clear code (no deferred clear).
std::vector<uint8_t> lzw_encode(const std::vector<uint8_t>& indices, int min_code_size) {
  const unsigned clear = 1u << min_code_size, eoi = clear + 1;
  // The table as a trie: each code's first child and each child's next sibling (0: none; children are > eoi),
  // so a clear resets only the roots.
  std::array<uint16_t, kMaxCodes> first_child, next_sibling;
  std::array<uint8_t, kMaxCodes> last_index;
  unsigned next = eoi + 1;
  BitWriter bits;
  auto width = [&] { return std::min(12, bit_length(next - 1)); };
  auto reset = [&] {
    bits.put(clear, width());
    std::fill(first_child.begin(), first_child.begin() + clear, uint16_t(0));
    next = eoi + 1;
  };
  reset();
  unsigned prefix = indices[0];
  for (std::size_t i = 1; i < indices.size(); ++i) {
    const uint8_t index = indices[i];
    unsigned child = first_child[prefix];
    while (child && last_index[child] != index) child = next_sibling[child];
    if (child) {
      prefix = child;
      continue;
    }
    bits.put(prefix, width());
    last_index[next] = index;
    first_child[next] = 0;
    next_sibling[next] = first_child[prefix];
    first_child[prefix] = uint16_t(next++);
    if (next == kMaxCodes) reset();
    prefix = index;
  }
  bits.put(prefix, width());
  if (next < kMaxCodes) ++next;  // the entry the decoder adds after reading the last code
  bits.put(eoi, width());
  bits.flush();
  return std::move(bits.bytes);
}

uint32_t pixel_rgb(const uint8_t* p, int channels) {
  return channels == 1 ? uint32_t(p[0]) * 0x010101u : (uint32_t(p[0]) << 16) | (uint32_t(p[1]) << 8) | p[2];
}

// The distinct colours of `count` pixels, sorted, or an empty list as soon as there are more than 256.
std::vector<uint32_t> exact_palette(const uint8_t* pixels, std::size_t count, int channels) {
  std::vector<uint32_t> colours;
  std::unordered_map<uint32_t, bool> seen;
  for (std::size_t i = 0; i < count; ++i) {
    const uint32_t c = pixel_rgb(pixels + i * std::size_t(channels), channels);
    if (seen.emplace(c, true).second) {
      if (colours.size() == 256) return {};
      colours.push_back(c);
    }
  }
  std::sort(colours.begin(), colours.end());
  return colours;
}

int channel_of(uint32_t rgb, int ch) { return int((rgb >> (16 - 8 * ch)) & 0xff); }

// Median cut over a frame's distinct colours (header comment), at most 256 entries.
std::vector<uint32_t> median_cut_palette(const uint8_t* pixels, std::size_t count, int channels) {
  std::unordered_map<uint32_t, uint32_t> histogram;
  for (std::size_t i = 0; i < count; ++i) ++histogram[pixel_rgb(pixels + i * std::size_t(channels), channels)];
  struct Colour {
    uint32_t rgb, count;
  };
  std::vector<Colour> colours;
  colours.reserve(histogram.size());
  for (const auto& [rgb, n] : histogram) colours.push_back({rgb, n});
  std::sort(colours.begin(), colours.end(), [](const Colour& a, const Colour& b) { return a.rgb < b.rgb; });

  struct Box {
    std::size_t begin, end;
    int channel = 0, range = 0;  // the widest channel (ties: red, green, blue) and its range
  };
  auto measure = [&](Box box) {
    std::array<int, 3> lo{255, 255, 255}, hi{0, 0, 0};
    for (std::size_t i = box.begin; i < box.end; ++i)
      for (int ch = 0; ch < 3; ++ch) {
        lo[ch] = std::min(lo[ch], channel_of(colours[i].rgb, ch));
        hi[ch] = std::max(hi[ch], channel_of(colours[i].rgb, ch));
      }
    for (int ch = 0; ch < 3; ++ch)
      if (hi[ch] - lo[ch] > box.range) box.channel = ch, box.range = hi[ch] - lo[ch];
    return box;
  };
  std::vector<Box> boxes{measure({0, colours.size()})};
  while (boxes.size() < 256) {
    // The box with the widest range; a box of one colour has none.
    std::size_t pick = 0;
    for (std::size_t b = 1; b < boxes.size(); ++b)
      if (boxes[b].range > boxes[pick].range) pick = b;
    if (boxes[pick].range == 0) break;
    const Box box = boxes[pick];
    const int ch = box.channel;
    std::sort(colours.begin() + long(box.begin), colours.begin() + long(box.end), [ch](const Colour& a, const Colour& b) {
      const int ca = channel_of(a.rgb, ch), cb = channel_of(b.rgb, ch);
      return ca != cb ? ca < cb : a.rgb < b.rgb;
    });
    // Split at the weighted median, keeping both halves non-empty.
    uint64_t total = 0, running = 0;
    for (std::size_t i = box.begin; i < box.end; ++i) total += colours[i].count;
    std::size_t split = box.begin + 1;
    for (std::size_t i = box.begin; i < box.end; ++i) {
      running += colours[i].count;
      if (2 * running >= total) {
        split = i + 1;
        break;
      }
    }
    split = std::clamp(split, box.begin + 1, box.end - 1);
    boxes[pick] = measure({box.begin, split});
    boxes.push_back(measure({split, box.end}));
  }
  std::vector<uint32_t> palette;
  for (const Box& box : boxes) {
    uint64_t sum[3] = {0, 0, 0}, n = 0;
    for (std::size_t i = box.begin; i < box.end; ++i) {
      for (int ch = 0; ch < 3; ++ch) sum[ch] += uint64_t(channel_of(colours[i].rgb, ch)) * colours[i].count;
      n += colours[i].count;
    }
    uint32_t rgb = 0;
    for (int ch = 0; ch < 3; ++ch) rgb = (rgb << 8) | uint32_t((sum[ch] + n / 2) / n);
    palette.push_back(rgb);
  }
  return palette;
}

// Each pixel's palette index: its own entry when the palette holds it, else the nearest (squared RGB
// distance, ties to the lower index).
std::vector<uint8_t> map_to_palette(const uint8_t* pixels, std::size_t count, int channels,
                                    const std::vector<uint32_t>& palette) {
  std::unordered_map<uint32_t, uint8_t> index;
  for (std::size_t i = 0; i < palette.size(); ++i) index.emplace(palette[i], uint8_t(i));
  std::vector<uint8_t> out(count);
  for (std::size_t i = 0; i < count; ++i) {
    const uint32_t c = pixel_rgb(pixels + i * std::size_t(channels), channels);
    auto it = index.find(c);
    if (it == index.end()) {
      int best = 0, best_distance = 1 << 30;
      for (std::size_t p = 0; p < palette.size(); ++p) {
        int d = 0;
        for (int ch = 0; ch < 3; ++ch) {
          const int diff = channel_of(c, ch) - channel_of(palette[p], ch);
          d += diff * diff;
        }
        if (d < best_distance) best = int(p), best_distance = d;
      }
      it = index.emplace(c, uint8_t(best)).first;
    }
    out[i] = it->second;
  }
  return out;
}

// ---- Reading ----

struct Frame {
  int left = 0, top = 0, width = 0, height = 0;
  bool interlaced = false;
  const uint8_t* palette = nullptr;  // 3 bytes an entry: the local table, else the global one
  int palette_size = 0;
  int disposal = 0;
  int transparent = -1;
  int delay_cs = 0;
  int min_code_size = 0;
  std::size_t data_begin = 0, data_end = 0;  // the image data's sub-blocks, terminator included
};

struct Structure {
  int width = 0, height = 0;
  uint32_t background = 0;
  std::vector<Frame> frames;
  int loop_count = -1;
  std::string comment;
  bool has_comment = false;
};

class Parser {
 public:
  Parser(std::string_view bytes, const std::string& name) : b_(bytes), name_(name) {}

  [[noreturn]] void damaged(const std::string& what) const {
    throw Error(ErrorKind::Input, "corrupt GIF file " + name_ + ": " + what);
  }
  std::size_t pos() const { return pos_; }
  const uint8_t* at(std::size_t p) const { return reinterpret_cast<const uint8_t*>(b_.data()) + p; }
  const uint8_t* take(std::size_t n) {
    if (n > b_.size() - pos_) damaged("truncated (no trailer)");
    const uint8_t* p = at(pos_);
    pos_ += n;
    return p;
  }
  int u8() { return *take(1); }
  int u16() {
    const uint8_t* p = take(2);
    return p[0] | (p[1] << 8);
  }
  // Walks sub-blocks up to and including the terminator; calls `each(data, size)` for each.
  template <class F>
  void sub_blocks(F&& each) {
    for (int n = u8(); n != 0; n = u8()) each(take(std::size_t(n)), std::size_t(n));
  }
  void skip_sub_blocks() {
    sub_blocks([](const uint8_t*, std::size_t) {});
  }

 private:
  std::string_view b_;
  const std::string& name_;
  std::size_t pos_ = 0;
};

// The block structure: header, tables, extensions, image descriptors; image data is located, not decoded.
// Every frame is counted against the limits here, before anything is allocated for pixels.
Structure parse_structure(Parser& in, const GifLimits& limits) {
  Structure s;
  in.take(6);  // the signature, checked by the caller
  s.width = in.u16();
  s.height = in.u16();
  const int packed = in.u8();
  const int background_index = in.u8();
  in.u8();  // pixel aspect ratio
  if (s.width == 0 || s.height == 0 || s.width > limits.max_side || s.height > limits.max_side)
    in.damaged("logical screen " + std::to_string(s.width) + "x" + std::to_string(s.height) + " is outside 1.." +
               std::to_string(limits.max_side));
  const int64_t screen_bytes = int64_t(s.width) * s.height * 3;
  const uint8_t* global = nullptr;
  int global_size = 0;
  if (packed & 0x80) {
    global_size = 2 << (packed & 7);
    global = in.take(std::size_t(global_size) * 3);
    if (background_index < global_size) {
      const uint8_t* c = global + background_index * 3;
      s.background = (uint32_t(c[0]) << 16) | (uint32_t(c[1]) << 8) | c[2];
    }
  }

  Frame pending;  // what the last Graphic Control Extension says about the next image
  int64_t rect_pixels = 0;
  for (;;) {
    const int introducer = in.u8();
    if (introducer == 0x3b) break;  // trailer
    if (introducer == 0x21) {
      const int label = in.u8();
      if (label == 0xf9) {
        if (in.u8() != 4) in.damaged("graphic control extension of the wrong size");
        const int flags = in.u8();
        pending.delay_cs = in.u16();
        const int transparent = in.u8();
        pending.disposal = (flags >> 2) & 7;
        pending.transparent = (flags & 1) ? transparent : -1;
        in.skip_sub_blocks();
      } else if (label == 0xfe) {
        const bool keep = !s.has_comment;
        s.has_comment = true;
        in.sub_blocks([&](const uint8_t* data, std::size_t n) {
          if (!keep) return;
          if (n > limits.max_comment_bytes - s.comment.size())
            in.damaged("comment larger than " + std::to_string(limits.max_comment_bytes) + " bytes");
          s.comment.append(reinterpret_cast<const char*>(data), n);
        });
      } else if (label == 0xff) {
        bool netscape = false, first = true;
        in.sub_blocks([&](const uint8_t* data, std::size_t n) {
          if (first) netscape = n == 11 && (std::memcmp(data, "NETSCAPE2.0", 11) == 0 ||
                                            std::memcmp(data, "ANIMEXTS1.0", 11) == 0);
          else if (netscape && n == 3 && data[0] == 1) s.loop_count = data[1] | (data[2] << 8);
          first = false;
        });
      } else {
        in.skip_sub_blocks();  // plain text and unknown extensions
      }
      continue;
    }
    if (introducer != 0x2c)
      in.damaged("unknown block type " + std::to_string(introducer) + " at byte " + std::to_string(in.pos() - 1));

    Frame f = pending;
    pending = Frame{};
    f.left = in.u16();
    f.top = in.u16();
    f.width = in.u16();
    f.height = in.u16();
    const int flags = in.u8();
    f.interlaced = flags & 0x40;
    if (flags & 0x80) {
      f.palette_size = 2 << (flags & 7);
      f.palette = in.take(std::size_t(f.palette_size) * 3);
    } else {
      f.palette = global;
      f.palette_size = global_size;
    }
    if (!f.palette) in.damaged("an image has no colour table");
    f.min_code_size = in.u8();
    if (f.min_code_size < 2 || f.min_code_size > 8)
      in.damaged("LZW minimum code size " + std::to_string(f.min_code_size) + " is outside 2..8");
    f.data_begin = in.pos();
    in.skip_sub_blocks();
    f.data_end = in.pos();

    // Output frames, the canvas and the saved canvas of "restore to previous"; and the pixels decoded (a
    // frame may extend past the screen, where its pixels are decoded and dropped).
    const int64_t frames = int64_t(s.frames.size()) + 1;
    rect_pixels += int64_t(f.width) * f.height;
    if (frames > limits.max_frames)
      in.damaged("more than " + std::to_string(limits.max_frames) + " frames");
    if (screen_bytes * (frames + 2) > limits.max_decoded_bytes || rect_pixels > limits.max_decoded_bytes)
      in.damaged(std::to_string(frames) + " frames of " + std::to_string(s.width) + "x" + std::to_string(s.height) +
                 " decode to more than " + std::to_string(limits.max_decoded_bytes >> 20) + " MiB");
    s.frames.push_back(f);
  }
  if (s.frames.empty()) in.damaged("no frames");
  return s;
}

// Reads LZW codes across the image data's sub-blocks.
class BitReader {
 public:
  BitReader(Parser& in, std::size_t begin, std::size_t end) : in_(in), pos_(begin), end_(end) {}

  // False when the data ends first.
  bool get(int width, unsigned& code) {
    while (used_ < width) {
      if (left_ == 0) {
        if (pos_ >= end_) return false;
        left_ = *in_.at(pos_++);
        if (left_ == 0) {  // the terminator
          pos_ = end_;
          return false;
        }
      }
      acc_ |= uint32_t(*in_.at(pos_++)) << used_;
      used_ += 8;
      --left_;
    }
    code = acc_ & ((1u << width) - 1);
    acc_ >>= width;
    used_ -= width;
    return true;
  }

 private:
  Parser& in_;
  std::size_t pos_, end_;
  std::size_t left_ = 0;  // bytes left in the current sub-block
  uint32_t acc_ = 0;
  int used_ = 0;
};

// Decodes a frame's colour indices, width x height in stored row order, handing each to `put(pixel, index)`;
// codes after the last pixel are ignored. Nothing is allocated per pixel: a frame larger than the screen costs
// only time, which parse_structure bounds.
template <class Put>
void lzw_decode(Parser& in, const Frame& f, Put&& put) {
  const std::size_t total = std::size_t(f.width) * f.height;
  // Entries are written before they are read: the roots here, the others as they are added.
  std::array<uint16_t, kMaxCodes> prefix, length;
  std::array<uint8_t, kMaxCodes> suffix, first;
  const unsigned clear = 1u << f.min_code_size, eoi = clear + 1;
  for (unsigned i = 0; i < clear; ++i) {
    suffix[i] = first[i] = uint8_t(i);
    length[i] = 1;
    prefix[i] = 0;
  }
  unsigned next = eoi + 1;
  int width = f.min_code_size + 1;
  int prev = -1;
  std::size_t produced = 0;
  // A code's string, written from its end along the prefix chain (each entry is its prefix's string plus one
  // index), cut at the frame's end.
  auto emit = [&](unsigned code) {
    const std::size_t n = length[code];
    unsigned c = code;
    for (std::size_t i = produced + n; i > produced; --i, c = prefix[c])
      if (i <= total) put(i - 1, suffix[c]);
    produced = std::min(total, produced + n);
  };
  auto add = [&](unsigned last) {  // a new entry: prev's string plus `last`
    prefix[next] = uint16_t(prev);
    suffix[next] = uint8_t(last);
    first[next] = first[unsigned(prev)];
    length[next] = uint16_t(length[unsigned(prev)] + 1);
    ++next;
  };
  BitReader bits(in, f.data_begin, f.data_end);
  unsigned code = 0;
  while (produced < total) {
    if (!bits.get(width, code)) in.damaged("image data ends early");
    if (code == clear) {
      next = eoi + 1;
      width = f.min_code_size + 1;
      prev = -1;
      continue;
    }
    if (code == eoi) break;
    if (prev < 0) {
      if (code > clear) in.damaged("LZW code " + std::to_string(code) + " before any table entry");
      emit(code);
      prev = int(code);
      continue;
    }
    if (code < next) {
      if (next < kMaxCodes) add(first[code]);
    } else if (code == next && next < kMaxCodes) {  // the string being defined: prev's plus its own first index
      add(first[unsigned(prev)]);
    } else {
      in.damaged("LZW code " + std::to_string(code) + " past the table (" + std::to_string(next) + " entries)");
    }
    emit(code);
    if (next == (1u << width) && width < 12) ++width;
    prev = int(code);
  }
  if (produced < total) in.damaged("image data ends early");
}

}  // namespace

double GifAnimation::fps() const {
  int64_t total = 0;
  for (int d : delays_cs) total += d <= 1 ? 10 : d;
  return total > 0 ? double(frames) * 100.0 / double(total) : 0.0;
}

bool looks_like_gif(std::string_view bytes) {
  return bytes.size() >= 6 && (bytes.substr(0, 6) == "GIF87a" || bytes.substr(0, 6) == "GIF89a");
}

std::vector<uint8_t> encode_gif(const uint8_t* frames, int64_t frame_count, int width, int height, int channels,
                                int fps, std::string_view comment) {
  auto usage = [](const std::string& what) { return Error(ErrorKind::Usage, "GIF: " + what); };
  if (!frames || frame_count < 1) throw usage("a GIF needs at least one frame");
  if (width < 1 || height < 1 || width > kMaxGifSide || height > kMaxGifSide)
    throw usage("frame size " + std::to_string(width) + "x" + std::to_string(height) + " is outside 1.." +
                std::to_string(kMaxGifSide));
  if (channels != 1 && channels != 3)
    throw usage("frames must have 1 (grey) or 3 (RGB) channels, got " + std::to_string(channels));
  if (fps < 1 || fps > kMaxFps)
    throw usage("fps must be in 1.." + std::to_string(kMaxFps) + " (GIF delays are 1/100 s), got " +
                std::to_string(fps));
  if (comment.size() > kMaxComment) throw usage("the comment is larger than 1 MiB");
  const std::size_t pixels = std::size_t(width) * std::size_t(height);
  const std::size_t frame_bytes = pixels * std::size_t(channels);

  std::vector<uint8_t> out = {'G', 'I', 'F', '8', '9', 'a'};
  put16(out, width);
  put16(out, height);
  // One global table when the whole clip has at most 256 colours (every frame is then exact).
  const std::vector<uint32_t> global = exact_palette(frames, pixels * std::size_t(frame_count), channels);
  const int global_bits = table_bits(global.size());
  out.push_back(global.empty() ? 0x70 : uint8_t(0xf0 | (global_bits - 1)));  // 8-bit colour resolution
  out.push_back(0);  // background index
  out.push_back(0);  // no aspect ratio
  if (!global.empty()) put_table(out, global, global_bits);
  // Loop forever.
  const uint8_t netscape[] = {0x21, 0xff, 11, 'N', 'E', 'T', 'S', 'C', 'A', 'P', 'E', '2', '.', '0', 3, 1, 0, 0, 0};
  out.insert(out.end(), netscape, netscape + sizeof netscape);
  if (!comment.empty()) {
    out.push_back(0x21);
    out.push_back(0xfe);
    put_sub_blocks(out, reinterpret_cast<const uint8_t*>(comment.data()), comment.size());
  }

  for (int64_t i = 0; i < frame_count; ++i) {
    const uint8_t* frame = frames + std::size_t(i) * frame_bytes;
    // Frame i shows from round(i * 100 / fps) to round((i + 1) * 100 / fps) hundredths.
    const int64_t start = (i * 100 + fps / 2) / fps, end = ((i + 1) * 100 + fps / 2) / fps;
    const uint8_t control[] = {0x21, 0xf9, 4, 0x04 /* disposal: leave in place */, uint8_t((end - start) & 0xff),
                               uint8_t((end - start) >> 8), 0, 0};
    out.insert(out.end(), control, control + sizeof control);

    std::vector<uint32_t> local;
    if (global.empty()) {
      local = exact_palette(frame, pixels, channels);
      if (local.empty()) local = median_cut_palette(frame, pixels, channels);
    }
    const std::vector<uint32_t>& palette = global.empty() ? local : global;
    const int bits = global.empty() ? table_bits(local.size()) : global_bits;
    out.push_back(0x2c);
    put16(out, 0);
    put16(out, 0);
    put16(out, width);
    put16(out, height);
    out.push_back(global.empty() ? uint8_t(0x80 | (bits - 1)) : 0);
    if (global.empty()) put_table(out, local, bits);
    const int min_code_size = std::max(2, bits);
    out.push_back(uint8_t(min_code_size));
    const std::vector<uint8_t> data = lzw_encode(map_to_palette(frame, pixels, channels, palette), min_code_size);
    put_sub_blocks(out, data.data(), data.size());
  }
  out.push_back(0x3b);
  return out;
}

void write_gif(const std::filesystem::path& path, const uint8_t* frames, int64_t frame_count, int width, int height,
               int channels, int fps, std::string_view comment) {
  const std::vector<uint8_t> bytes = encode_gif(frames, frame_count, width, height, channels, fps, comment);
  AtomicFile file(path);
  file.write(bytes.data(), bytes.size());
  file.commit();
}

GifAnimation decode_gif(std::string_view bytes, const std::string& name, const GifLimits& limits) {
  if (!looks_like_gif(bytes)) throw Error(ErrorKind::Input, name + " is not a GIF file");
  Parser in(bytes, name);
  const Structure s = parse_structure(in, limits);

  GifAnimation gif;
  gif.width = s.width;
  gif.height = s.height;
  gif.frames = int64_t(s.frames.size());
  gif.loop_count = s.loop_count;
  gif.comment = s.comment;
  const std::size_t screen = std::size_t(s.width) * std::size_t(s.height) * 3;
  gif.rgb.reserve(screen * s.frames.size());  // bounded by parse_structure

  const uint8_t background[3] = {uint8_t(s.background >> 16), uint8_t(s.background >> 8), uint8_t(s.background)};
  std::vector<uint8_t> canvas(screen), previous;
  for (std::size_t i = 0; i < screen; i += 3) std::memcpy(canvas.data() + i, background, 3);
  std::vector<int> rows;
  for (const Frame& f : s.frames) {
    if (f.disposal == 3) previous = canvas;
    // Stored row r is image row rows[r]: interlaced images store every 8th row from 0, every 8th from 4,
    // every 4th from 2, then every 2nd from 1.
    rows.clear();
    if (f.interlaced) {
      for (auto [start, step] : {std::pair{0, 8}, {4, 8}, {2, 4}, {1, 2}})
        for (int y = start; y < f.height; y += step) rows.push_back(y);
    } else {
      for (int y = 0; y < f.height; ++y) rows.push_back(y);
    }
    const std::size_t frame_width = std::size_t(f.width);
    lzw_decode(in, f, [&](std::size_t pixel, uint8_t index) {
      if (index == f.transparent) return;
      if (index >= f.palette_size)
        in.damaged("colour index " + std::to_string(index) + " past a table of " + std::to_string(f.palette_size));
      const int y = f.top + rows[pixel / frame_width];
      const int x = f.left + int(pixel % frame_width);
      if (x < s.width && y < s.height)
        std::memcpy(canvas.data() + (std::size_t(y) * std::size_t(s.width) + std::size_t(x)) * 3, f.palette + index * 3, 3);
    });
    gif.rgb.insert(gif.rgb.end(), canvas.begin(), canvas.end());
    gif.delays_cs.push_back(f.delay_cs);
    if (f.disposal == 2) {  // restore the frame's area to the background
      for (int y = f.top; y < std::min(s.height, f.top + f.height); ++y) {
        if (f.left >= s.width) break;
        uint8_t* row = canvas.data() + (std::size_t(y) * std::size_t(s.width) + std::size_t(f.left)) * 3;
        for (int x = 0; x < std::min(s.width - f.left, f.width); ++x) std::memcpy(row + std::size_t(x) * 3, background, 3);
      }
    } else if (f.disposal == 3) {
      canvas.swap(previous);
    }
  }
  return gif;
}

GifAnimation read_gif(const std::filesystem::path& path, const GifLimits& limits) {
  const std::string bytes = read_bounded_file(path, limits.max_file_bytes, ErrorKind::Input);
  return decode_gif(bytes, path.string(), limits);
}

std::string read_gif_comment(const std::filesystem::path& path, const GifLimits& limits) {
  const std::string bytes = read_bounded_file(path, limits.max_file_bytes, ErrorKind::Input);
  if (!looks_like_gif(bytes)) throw Error(ErrorKind::Input, path.string() + " is not a GIF file");
  const std::string name = path.string();
  Parser in(bytes, name);
  return parse_structure(in, limits).comment;
}

}  // namespace ditgen::io
