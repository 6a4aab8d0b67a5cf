#include "log/record_format.h"

#include <cstdint>
#include <cstdio>

namespace ftpsgate::log {

namespace {
// Length of the valid UTF-8 sequence at `at`, or 0 (overlong forms, surrogates and
// values above U+10FFFF are invalid, as in RFC 3629).
std::size_t utf8_sequence(std::string_view text, std::size_t at) {
  const auto byte = [&](std::size_t i) { return static_cast<uint8_t>(text[i]); };
  const uint8_t lead = byte(at);
  std::size_t length = 0;
  uint32_t min = 0;
  uint32_t code = 0;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2, min = 0x80, code = lead & 0x1F;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3, min = 0x800, code = lead & 0x0F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4, min = 0x10000, code = lead & 0x07;
  } else {
    return 0;
  }
  if (at + length > text.size()) return 0;
  for (std::size_t i = 1; i < length; ++i) {
    if ((byte(at + i) & 0xC0) != 0x80) return 0;
    code = (code << 6) | (byte(at + i) & 0x3F);
  }
  if (code < min || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return 0;
  return length;
}

void append_hex(std::string& out, uint8_t byte) {
  char buf[5];
  std::snprintf(buf, sizeof(buf), "\\x%02x", byte);
  out += buf;
}
}  // namespace

std::string_view to_string(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
  }
  return "info";
}

std::string text_value(std::string_view value) {
  std::string escaped;
  bool quote = value.empty();
  for (std::size_t i = 0; i < value.size();) {
    const auto c = static_cast<uint8_t>(value[i]);
    if (c >= 0x80) {
      if (const std::size_t n = utf8_sequence(value, i)) {
        escaped.append(value.substr(i, n));
        i += n;
      } else {
        append_hex(escaped, c);
        quote = true;
        ++i;
      }
      continue;
    }
    switch (c) {
      case '"': escaped += "\\\""; quote = true; break;
      case '\\': escaped += "\\\\"; quote = true; break;
      case '\n': escaped += "\\n"; quote = true; break;
      case '\r': escaped += "\\r"; quote = true; break;
      case '\t': escaped += "\\t"; quote = true; break;
      default:
        if (c < 0x20 || c == 0x7F) {
          append_hex(escaped, c);
          quote = true;
        } else {
          quote |= c == ' ' || c == '=';
          escaped += static_cast<char>(c);
        }
    }
    ++i;
  }
  return quote ? "\"" + escaped + "\"" : escaped;
}

std::string format_json(std::string_view ts, LogLevel level, std::string_view event, const nlohmann::json& fields) {
  nlohmann::json record = {{"ts", ts}, {"level", to_string(level)}, {"event", event}};
  for (const auto& [key, value] : fields.items()) record[key] = value;
  return record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string format_text(std::string_view ts, LogLevel level, std::string_view event, const nlohmann::json& fields) {
  std::string line = std::string(ts) + " " + std::string(to_string(level)) + " " + text_value(event);
  for (const auto& [key, value] : fields.items()) {
    const std::string text =
        value.is_string() ? value.get<std::string>() : value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    line += " " + text_value(key) + "=" + text_value(text);
  }
  return line;
}

}  // namespace ftpsgate::log
