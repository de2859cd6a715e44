// SHA-256 digests, for identifying model files and outputs by content.
#pragma once

#include <cstddef>
#include <filesystem>
#include <span>
#include <string>

namespace ditgen {

// Lowercase hex SHA-256 of a file, read in chunks. Throws Error(Input) when the file cannot be read.
std::string sha256_hex(const std::filesystem::path& file);

// Lowercase hex SHA-256 of a byte buffer.
std::string sha256_hex(std::span<const std::byte> data);

}  // namespace ditgen
