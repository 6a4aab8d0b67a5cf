#include "ftp/pwd_reply.h"

namespace ftpsgate::ftp {

std::optional<std::string> pwd_directory(const Reply& reply) {
  if (reply.code != 257 || reply.lines.empty()) return std::nullopt;
  const std::string& line = reply.lines.front();
  const std::size_t open = line.find('"', 4);
  if (line.size() < 4 || open == std::string::npos) return std::nullopt;
  std::string name;
  for (std::size_t i = open + 1; i < line.size(); ++i) {
    if (line[i] != '"') {
      name += line[i];
      continue;
    }
    if (i + 1 < line.size() && line[i + 1] == '"') {
      name += '"';
      ++i;
      continue;
    }
    return name;
  }
  return std::nullopt;  // no closing quote
}

}  // namespace ftpsgate::ftp
