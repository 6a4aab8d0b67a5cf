// One line of a wu-ftpd/ProFTPD xferlog(5) file, the transfer log that xferstats,
// fail2ban and the usual FTP report tools read. Pure, so the layout and the escaping
// that keeps a hostile file or user name inside its own field are unit-tested.
#pragma once

#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>

namespace ftpsgate::log {

struct XferlogEntry {
  std::time_t end = 0;        // when the transfer ended (written in local time)
  double seconds = 0;         // how long it took
  std::string_view remote_host;  // the client's address
  uint64_t bytes = 0;
  std::string_view filename;  // as the client named it
  bool binary = true;         // TYPE I (b) or TYPE A (a)
  bool upload = false;        // i (incoming) or o (outgoing)
  std::string_view user;
  bool complete = false;      // c (complete) or i (incomplete)
};

// The line with its trailing newline:
// `Sun Dec  6 01:02:03 2026 1 127.0.0.1 1048576 /path/file b _ o r alice ftp 0 * c`.
// The transfer time is whole seconds, at least 1 (as wu-ftpd, so a rate never divides by
// zero). SECURITY: log injection. Every space and control byte of the file name and user
// name becomes `_` (as ProFTPD does), so a name can neither shift the fields nor end the
// line; an empty one is written as `-`, a file name longer than
// limits::kXferlogMaxFilename is cut.
std::string format_xferlog_line(const XferlogEntry& entry);

}  // namespace ftpsgate::log
