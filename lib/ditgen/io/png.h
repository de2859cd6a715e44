// PNG images with text chunks (A1111 "parameters", ditgen's JSON), written atomically.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace ditgen::io {

struct PngText {
  std::string keyword;  // 1..79 Latin-1 characters
  std::string text;     // UTF-8; stored as tEXt when it is plain ASCII, else as iTXt
};

struct Image {
  int width = 0;
  int height = 0;
  int channels = 0;             // 1 (grey), 3 (RGB) or 4 (RGBA)
  std::vector<uint8_t> pixels;  // row-major, interleaved channels
};

// Encodes `image` (stb_image_write) and puts the text chunks right after IHDR, where readers that stop
// at the pixel data (Pillow, A1111) still find them.
// Throws Error(Usage) for a bad image or keyword, Error(Output) when the file cannot be written.
void write_png(const std::filesystem::path& path, const Image& image, const std::vector<PngText>& texts = {});

// Decodes pixels (stb_image). Throws Error(Input) for a missing or undecodable file.
Image read_png(const std::filesystem::path& path);

// Reads the tEXt/iTXt chunks, in file order, checking signature, chunk bounds and CRCs.
// Throws Error(Input) for a missing, truncated or corrupt file.
std::vector<PngText> read_png_text(const std::filesystem::path& path);

}  // namespace ditgen::io
