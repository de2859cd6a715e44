#include "ditgen/io/bounded_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ditgen::io {

RegularFile open_regular_file(const std::filesystem::path& path, ErrorKind kind) {
  auto cannot_read = [&](int err) { return Error(kind, "cannot read " + path.string() + ": " + std::strerror(err)); };
  // O_NONBLOCK: opening a FIFO would otherwise wait for a writer; it changes nothing for regular files.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw cannot_read(errno);
  FilePtr file(::fdopen(fd, "rb"), &std::fclose);
  if (!file) {
    const int err = errno;
    ::close(fd);
    throw cannot_read(err);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw cannot_read(errno);
  if (!S_ISREG(st.st_mode)) throw Error(kind, path.string() + " is not a regular file");
  return {std::move(file), static_cast<std::size_t>(st.st_size)};
}

bool path_present(const std::filesystem::path& path) {
  std::error_code ec;
  return std::filesystem::symlink_status(path, ec).type() != std::filesystem::file_type::not_found;
}

bool read_exact(std::FILE* file, void* into, std::size_t size) {
  return std::fread(into, 1, size, file) == size;
}

std::string read_bounded_file(const std::filesystem::path& path, std::size_t max_bytes, ErrorKind kind) {
  RegularFile f = open_regular_file(path, kind);
  auto too_large = [&] { return Error(kind, path.string() + " is larger than " + std::to_string(max_bytes) + " bytes"); };
  if (f.size > max_bytes) throw too_large();
  std::string text;
  text.reserve(f.size);
  char buffer[65536];
  std::size_t got;
  // The size from fstat may be stale (a growing file): the limit applies to what is read.
  while ((got = std::fread(buffer, 1, sizeof buffer, f.file.get())) > 0) {
    if (got > max_bytes - text.size()) throw too_large();
    text.append(buffer, got);
  }
  if (std::ferror(f.file.get())) throw Error(kind, "cannot read " + path.string() + ": read failed");
  return text;
}

}  // namespace ditgen::io
