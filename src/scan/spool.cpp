#include "scan/spool.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace ftpsgate::inspection {

bool SpoolBudget::reserve(uint64_t bytes) {
  uint64_t used = used_.load();
  const uint64_t max = max_.load();
  do {
    if (bytes > max || used > max - bytes) return false;
  } while (!used_.compare_exchange_weak(used, used + bytes));
  publish();
  return true;
}

Spool::Spool(Settings settings) : settings_(std::move(settings)) {}

Spool::~Spool() {
  if (reserved_ > 0 && settings_.budget != nullptr) settings_.budget->release(reserved_);
}

bool Spool::open_file() {
  // SECURITY: no name in the spool directory for another local user to open, swap or
  // find left behind: an unnamed file where the kernel has O_TMPFILE.
  int fd = ::open(settings_.dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC | O_EXCL, 0600);
  if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
    std::string name = settings_.dir + "/ftpsgate-spool-XXXXXX";
    fd = ::mkostemp(name.data(), O_CLOEXEC);  // mode 0600
    if (fd >= 0) ::unlink(name.c_str());
  }
  if (fd < 0) {
    error_ = "cannot create a spool file in " + settings_.dir + ": " + std::strerror(errno);
    return false;
  }
  file_.reset(fd);
  // What memory held moves to the file; memory is given back.
  std::size_t done = 0;
  while (done < memory_.size()) {
    const ssize_t n = ::write(fd, memory_.data() + done, memory_.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error_ = std::string("cannot write the spool file: ") + std::strerror(n < 0 ? errno : ENOSPC);
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  std::vector<char>().swap(memory_);
  return true;
}

bool Spool::append(const char* data, std::size_t length) {
  if (length == 0) return true;
  if (!error_.empty() || full_) return false;
  if (settings_.budget == nullptr || !settings_.budget->reserve(length)) {
    full_ = true;
    return false;
  }
  reserved_ += length;
  if (!on_disk() && size_ + length > settings_.memory_threshold && !open_file()) return false;
  if (!on_disk()) {
    memory_.insert(memory_.end(), data, data + length);
    size_ += length;
    return true;
  }
  std::size_t done = 0;
  while (done < length) {
    const ssize_t n = ::pwrite(file_.get(), data + done, length - done, static_cast<off_t>(size_ + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error_ = std::string("cannot write the spool file: ") + std::strerror(n < 0 ? errno : ENOSPC);
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  size_ += length;
  return true;
}

ssize_t Spool::read_at(uint64_t offset, char* out, std::size_t length) const {
  if (offset >= size_) return 0;
  const std::size_t want = static_cast<std::size_t>(std::min<uint64_t>(length, size_ - offset));
  if (!on_disk()) {
    std::memcpy(out, memory_.data() + offset, want);
    return static_cast<ssize_t>(want);
  }
  for (;;) {
    const ssize_t n = ::pread(file_.get(), out, want, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    return n;
  }
}

}  // namespace ftpsgate::inspection
