#include "ditgen/io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <string>

#include "ditgen/core/error.h"

namespace ditgen::io {

namespace {
std::string temp_prefix(const std::filesystem::path& target) { return "." + target.filename().string() + ".tmp-"; }

[[noreturn]] void fail(const std::filesystem::path& target, const std::string& what, int err) {
  throw Error(ErrorKind::Output, "cannot write " + target.string() + ": " + what + ": " + std::strerror(err));
}
}  // namespace

AtomicFile::AtomicFile(std::filesystem::path target) : target_(std::move(target)) {
  // Renaming over a folder, a device node or a pipe would replace it: only regular files are overwritten.
  struct stat st {};
  if (::stat(target_.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
    throw Error(ErrorKind::Output, "cannot write " + target_.string() + ": it exists and is not a regular file");
  std::filesystem::path dir = target_.parent_path();
  if (dir.empty()) dir = ".";
  std::string pattern = (dir / (temp_prefix(target_) + "XXXXXX")).string();
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

int AtomicFile::remove_stale(const std::vector<std::filesystem::path>& targets) {
  std::map<std::filesystem::path, std::set<std::string>> prefixes;  // folder -> temporary-name prefixes
  for (const auto& target : targets)
    prefixes[target.parent_path().empty() ? "." : target.parent_path()].insert(temp_prefix(target));
  int removed = 0;
  for (const auto& [dir, wanted] : prefixes) {  // one listing per folder, however many targets it holds
    std::error_code ec;
    for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (name.size() <= 6 || !wanted.count(name.substr(0, name.size() - 6))) continue;
      std::error_code type_ec;
      if (it->is_regular_file(type_ec) && ::unlink(it->path().c_str()) == 0) ++removed;
    }
  }
  return removed;
}

}  // namespace ditgen::io
