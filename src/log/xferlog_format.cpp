#include "log/xferlog_format.h"

#include <algorithm>
#include <cmath>

#include "ftpsgate/limits.h"

namespace ftpsgate::log {

namespace {
// A field that may not contain the separator: spaces and control bytes become '_'.
std::string field(std::string_view value, std::size_t max_length) {
  if (value.empty()) return "-";
  std::string out(value.substr(0, max_length));
  for (char& c : out) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte <= 0x20 || byte == 0x7f) c = '_';
  }
  return out;
}
}  // namespace

std::string format_xferlog_line(const XferlogEntry& entry) {
  tm local{};
  localtime_r(&entry.end, &local);
  char when[64];
  const std::size_t n = std::strftime(when, sizeof(when), "%a %b %e %H:%M:%S %Y", &local);
  const auto seconds = std::max<long long>(1, std::llround(std::max(0.0, entry.seconds)));
  std::string line(when, n);
  line += ' ' + std::to_string(seconds) + ' ' + field(entry.remote_host, limits::kXferlogMaxFilename) + ' ' +
          std::to_string(entry.bytes) + ' ' + field(entry.filename, limits::kXferlogMaxFilename);
  line += entry.binary ? " b _ " : " a _ ";
  line += entry.upload ? "i r " : "o r ";
  line += field(entry.user, limits::kXferlogMaxFilename) + " ftp 0 * " + (entry.complete ? "c" : "i") + "\n";
  return line;
}

}  // namespace ftpsgate::log
