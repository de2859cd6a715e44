#include "ditgen/io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "ditgen/core/error.h"

namespace ditgen::io {

namespace {
[[noreturn]] void fail(const std::filesystem::path& target, const std::string& what, int err) {
  throw Error(ErrorKind::Output, "cannot write " + target.string() + ": " + what + ": " + std::strerror(err));
}
}  // namespace

AtomicFile::AtomicFile(std::filesystem::path target) : target_(std::move(target)) {
  std::filesystem::path dir = target_.parent_path();
  if (dir.empty()) dir = ".";
  std::string pattern = (dir / ("." + target_.filename().string() + ".tmp-XXXXXX")).string();
  fd_ = ::mkstemp(pattern.data());
  if (fd_ < 0) fail(target_, "cannot create a file in " + dir.string(), errno);
  temp_ = pattern;
  ::fchmod(fd_, 0644);  // mkstemp creates 0600; outputs are ordinary files
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && !temp_.empty()) ::unlink(temp_.c_str());
}

void AtomicFile::write(const void* data, std::size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::write(fd_, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail(target_, "write failed", n < 0 ? errno : ENOSPC);
    p += n;
    size -= static_cast<std::size_t>(n);
  }
}

void AtomicFile::commit() {
  if (::fsync(fd_) != 0) fail(target_, "fsync failed", errno);
  if (::close(fd_) != 0) {
    fd_ = -1;
    fail(target_, "close failed", errno);
  }
  fd_ = -1;
  if (::rename(temp_.c_str(), target_.c_str()) != 0) fail(target_, "rename failed", errno);
  committed_ = true;
}

}  // namespace ditgen::io
