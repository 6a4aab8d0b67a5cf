// Decimal numbers in FTP arguments and replies (REST offsets, SIZE replies, ALLO sizes).
#pragma once

#include <charconv>
#include <cstdint>
#include <optional>
#include <string_view>

namespace ftpsgate::ftp {

// The number `text` starts with (ALLO's "100 R 10", a SIZE reply's text); with `whole`,
// only when nothing follows it (REST). nullopt: no digits, or too large.
inline std::optional<uint64_t> parse_decimal(std::string_view text, bool whole) {
  uint64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end == text.data()) return std::nullopt;
  if (whole && end != text.data() + text.size()) return std::nullopt;
  return value;
}

}  // namespace ftpsgate::ftp
