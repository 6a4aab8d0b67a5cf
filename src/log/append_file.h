// A log file written with one write(2) per line, opened O_APPEND (mode 0640), that a
// SIGHUP reopens by name so logrotate's rename-then-HUP works.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace ftpsgate::log {

// Writes all of `data` to `fd`, retrying after EINTR and short writes; a failure (a full
// disk, a closed pipe) gives up quietly: logging must not stop the gateway.
void write_all(int fd, std::string_view data);

class AppendFile {
 public:
  static std::unique_ptr<AppendFile> create(std::string path, std::string& error);
  ~AppendFile();
  AppendFile(const AppendFile&) = delete;
  AppendFile& operator=(const AppendFile&) = delete;

  // Thread-safe: an O_APPEND write lands whole at the end of the file.
  void write(std::string_view line) const { write_all(fd_, line); }
  // Opens the path anew (after logrotate renamed the file). The new file takes over the
  // same descriptor number (dup2), so writers on other threads never see a closed one.
  // On failure the old file stays in use.
  bool reopen(std::string& error);
  const std::string& path() const { return path_; }

 private:
  AppendFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  static int open_file(const std::string& path, std::string& error);

  std::string path_;
  int fd_;
};

}  // namespace ftpsgate::log
