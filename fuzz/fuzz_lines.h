// Splitting fuzz input into lines, for the targets that read control-channel replies
// (reply_fuzzer.cpp, feat_fuzzer.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace ftpsgate::fuzz {

// text cut at each terminator (not kept); a last piece without one is kept, an empty
// text gives no pieces and a text ending in a terminator no empty last piece.
inline std::vector<std::string_view> split(std::string_view text, std::string_view terminator) {
  std::vector<std::string_view> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    const std::size_t end = text.find(terminator, start);
    if (end == std::string_view::npos) {
      lines.push_back(text.substr(start));
      break;
    }
    lines.push_back(text.substr(start, end - start));
    start = end + terminator.size();
  }
  return lines;
}

// The input as a backend's lines, as the line reader delivers them: split at LF, a CR
// before the LF dropped.
inline std::vector<std::string_view> backend_lines(const uint8_t* data, size_t size) {
  std::vector<std::string_view> lines = split(std::string_view(reinterpret_cast<const char*>(data), size), "\n");
  for (auto& line : lines) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  }
  return lines;
}

}  // namespace ftpsgate::fuzz
