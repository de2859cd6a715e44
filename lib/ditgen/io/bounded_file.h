// Opening and reading input files that must be regular files of bounded size, so a device node, FIFO or
// folder given where a file belongs fails at once, and a huge file fails before it is read into memory.
#pragma once

#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "ditgen/core/error.h"

namespace ditgen::io {

using FilePtr = std::unique_ptr<std::FILE, int (*)(std::FILE*)>;

// An open regular file and its size. Throws Error(kind): "cannot read PATH: REASON" (missing, unreadable,
// a symlink loop, ...) or "PATH is not a regular file". Never blocks on a FIFO.
struct RegularFile {
  FilePtr file;
  std::size_t size;
};
RegularFile open_regular_file(const std::filesystem::path& path, ErrorKind kind);

// Whether `path` names anything, without throwing: false only when it is absent. A symlink that loops or
// dangles counts as present, so that opening it reports why it cannot be read.
bool path_present(const std::filesystem::path& path);

// Reads exactly `size` bytes; false when the file ends (or fails) first.
bool read_exact(std::FILE* file, void* into, std::size_t size);

// The whole of a regular file of at most `max_bytes` bytes, else Error(kind) "PATH is larger than N bytes".
std::string read_bounded_file(const std::filesystem::path& path, std::size_t max_bytes, ErrorKind kind);

}  // namespace ditgen::io
