// Output files appear whole or not at all: data goes to a hidden temporary file beside the target,
// which is renamed over the target on commit() and removed if the writer is destroyed first.
#pragma once

#include <cstddef>
#include <filesystem>
#include <vector>

namespace ditgen::io {

class AtomicFile {
 public:
  // Creates the temporary file; throws Error(Output) naming the target when its folder is not writable or
  // the target exists and is not a regular file (a folder, a device node, a pipe: never replaced).
  explicit AtomicFile(std::filesystem::path target);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // Appends bytes to the temporary file; throws Error(Output) on a short write (disk full, ...).
  void write(const void* data, std::size_t size);
  // Flushes to disk and renames the temporary file to the target.
  void commit();

  // Where the bytes go until commit(); for writers (libav) that open the file by name themselves.
  const std::filesystem::path& temp_path() const { return temp_; }
  const std::filesystem::path& target() const { return target_; }

  // Removes the temporary files earlier writers of `targets` left behind when they were killed outright
  // (SIGKILL, power loss); returns how many. Only names of the exact temporary pattern are touched.
  static int remove_stale(const std::vector<std::filesystem::path>& targets);

 private:
  std::filesystem::path target_;
  std::filesystem::path temp_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace ditgen::io
