#include "log/append_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ftpsgate::log {

void write_all(int fd, std::string_view data) {
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<std::size_t>(n);
  }
}

int AppendFile::open_file(const std::string& path, std::string& error) {
  // O_CLOEXEC: a passphrase command (popen) does not inherit the file.
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
  if (fd < 0) error = "cannot open " + path + ": " + std::strerror(errno);
  return fd;
}

std::unique_ptr<AppendFile> AppendFile::create(std::string path, std::string& error) {
  const int fd = open_file(path, error);
  if (fd < 0) return nullptr;
  return std::unique_ptr<AppendFile>(new AppendFile(std::move(path), fd));
}

AppendFile::~AppendFile() { ::close(fd_); }

bool AppendFile::reopen(std::string& error) {
  const int fd = open_file(path_, error);
  if (fd < 0) return false;
  const bool ok = ::dup3(fd, fd_, O_CLOEXEC) >= 0;
  if (!ok) error = "cannot reopen " + path_ + ": " + std::strerror(errno);
  ::close(fd);
  return ok;
}

}  // namespace ftpsgate::log
