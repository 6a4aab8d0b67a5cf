#include "rules/ftp_path.h"

#include <algorithm>
#include <cctype>
#include <optional>
#include <vector>

namespace ftpsgate::rules {

namespace {

bool is_hex(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }

std::optional<PathError> screen(std::string_view text) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (byte == 0) return PathError::kNul;
    if (byte < 0x20 || byte == 0x7f) return PathError::kControl;
    if (byte == '\\') return PathError::kBackslash;
    // SECURITY: any %XX, not only the dangerous ones: a server that decodes one decodes all.
    if (byte == '%' && i + 2 < text.size() && is_hex(text[i + 1]) && is_hex(text[i + 2])) {
      return PathError::kEncoded;
    }
  }
  if (!text.empty() && text.front() == '~') return PathError::kTilde;
  return std::nullopt;
}

}  // namespace

std::string_view path_error_text(PathError error) {
  switch (error) {
    case PathError::kNul: return "NUL byte in path";
    case PathError::kControl: return "control character in path";
    case PathError::kBackslash: return "backslash in path";
    case PathError::kEncoded: return "percent-encoded path";
    case PathError::kTilde: return "home-directory expansion in path";
    case PathError::kTooLong: return "path too long";
    case PathError::kRelativeUnknown: return "working directory unknown";
  }
  return "invalid path";
}

std::variant<std::string, PathError> resolve_path(std::string_view cwd, std::string_view argument) {
  if (auto error = screen(argument)) return *error;
  const bool absolute = !argument.empty() && argument.front() == '/';
  if (!absolute && cwd.empty()) return PathError::kRelativeUnknown;
  std::vector<std::string_view> parts;
  auto walk = [&parts](std::string_view text) {
    std::size_t start = 0;
    while (start <= text.size()) {
      const std::size_t end = std::min(text.find('/', start), text.size());
      const std::string_view part = text.substr(start, end - start);
      if (part == "..") {
        if (!parts.empty()) parts.pop_back();
      } else if (!part.empty() && part != ".") {
        parts.push_back(part);
      }
      start = end + 1;
    }
  };
  if (!absolute) walk(cwd);
  walk(argument);
  std::string out;
  for (const auto part : parts) {
    out += '/';
    out += part;
    if (out.size() > kMaxPathLength) return PathError::kTooLong;
  }
  return out.empty() ? std::string("/") : out;
}

}  // namespace ftpsgate::rules
