#include "config/value_parsers.h"

#include <arpa/inet.h>

#include <array>
#include <cctype>
#include <limits>

#include "config/config_loader.h"

namespace ftpsgate::config {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

// Leading decimal digits of `text` and the rest (the unit).
std::pair<std::string_view, std::string_view> split_number(std::string_view text) {
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  return {text.substr(0, digits), text.substr(digits)};
}

std::optional<uint64_t> checked_multiply(uint64_t value, uint64_t factor, uint64_t max) {
  if (value > max / factor) return std::nullopt;
  return value * factor;
}

std::optional<uint16_t> parse_port(std::string_view text) {
  auto value = parse_uint(text);
  if (!value || *value == 0 || *value > 65535) return std::nullopt;
  return static_cast<uint16_t>(*value);
}

// RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens.
bool is_host_name(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  bool all_numeric = true;
  std::size_t label_length = 0;
  char previous = '.';
  for (char c : host) {
    if (c == '.') {
      if (label_length == 0 || previous == '-') return false;
      label_length = 0;
    } else if (std::isalnum(static_cast<unsigned char>(c)) || c == '-') {
      if (c == '-' && label_length == 0) return false;
      if (++label_length > 63) return false;
      if (!std::isdigit(static_cast<unsigned char>(c))) all_numeric = false;
    } else {
      return false;
    }
    previous = c;
  }
  if (label_length == 0 || previous == '-') return false;
  // "1.2.3" is a broken IPv4 address, not a name.
  return !all_numeric;
}

}  // namespace

std::optional<uint64_t> parse_uint(std::string_view text) {
  if (text.empty()) return std::nullopt;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    const auto digit = static_cast<uint64_t>(c - '0');
    if (value > (std::numeric_limits<uint64_t>::max() - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  return value;
}

std::optional<Duration> parse_duration(std::string_view text) {
  const auto [number, unit] = split_number(text);
  auto value = parse_uint(number);
  if (!value) return std::nullopt;
  uint64_t factor = 0;
  if (unit.empty() || unit == "s") {
    factor = 1000;  // a plain number is seconds, like the SPEC's "1800s"
  } else if (unit == "ms") {
    factor = 1;
  } else if (unit == "m") {
    factor = uint64_t{60} * 1000;
  } else if (unit == "h") {
    factor = uint64_t{60} * 60 * 1000;
  } else {
    return std::nullopt;
  }
  const auto max = static_cast<uint64_t>(std::numeric_limits<Duration::rep>::max());
  auto millis = checked_multiply(*value, factor, max);
  if (!millis) return std::nullopt;
  return Duration(static_cast<Duration::rep>(*millis));
}

std::optional<std::size_t> parse_size(std::string_view text) {
  const auto [number, unit] = split_number(text);
  auto value = parse_uint(number);
  if (!value) return std::nullopt;
  uint64_t factor = 0;
  if (unit.empty() || unit == "B") {
    factor = 1;
  } else if (unit == "KiB") {
    factor = uint64_t{1} << 10;
  } else if (unit == "MiB") {
    factor = uint64_t{1} << 20;
  } else if (unit == "GiB") {
    factor = uint64_t{1} << 30;
  } else {
    return std::nullopt;  // "KB"/"k" are ambiguous (1000 or 1024); only IEC units
  }
  auto bytes = checked_multiply(*value, factor, std::numeric_limits<std::size_t>::max());
  if (!bytes) return std::nullopt;
  return static_cast<std::size_t>(*bytes);
}

std::optional<uint64_t> parse_rate(std::string_view text) {
  if (!text.ends_with("/s")) return std::nullopt;
  const auto [number, unit] = split_number(text.substr(0, text.size() - 2));
  auto value = parse_uint(number);
  if (!value || *value == 0) return std::nullopt;
  // Rates are networking's: kB/MB/GB are decimal; the IEC units are there for who wants them.
  static const std::pair<std::string_view, uint64_t> kUnits[] = {
      {"B", 1},           {"kB", 1000},          {"MB", 1000 * 1000},   {"GB", 1000 * 1000 * 1000},
      {"KiB", 1ull << 10}, {"MiB", 1ull << 20}, {"GiB", 1ull << 30}};
  for (const auto& [name, factor] : kUnits) {
    if (unit == name) return checked_multiply(*value, factor, uint64_t{1} << 50);
  }
  return std::nullopt;
}

std::optional<HostPort> parse_host_port(std::string_view text) {
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return std::nullopt;
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    if (!is_ipv6_literal(host)) return std::nullopt;
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    // An IPv6 address needs brackets, or its last group would be read as the port.
    if (host.find(':') != std::string_view::npos) return std::nullopt;
    if (!is_ipv4_literal(host) && !is_host_name(host)) return std::nullopt;
  }
  auto number = parse_port(port);
  if (!number) return std::nullopt;
  return HostPort{std::string(host), *number};
}

std::optional<PortRange> parse_port_range(std::string_view text) {
  const auto dash = text.find('-');
  auto low = parse_port(text.substr(0, dash));
  auto high = dash == std::string_view::npos ? low : parse_port(text.substr(dash + 1));
  if (!low || !high || *low > *high) return std::nullopt;
  return PortRange{*low, *high};
}

std::optional<bool> parse_bool(std::string_view text) {
  if (iequals(text, "true") || iequals(text, "yes")) return true;
  if (iequals(text, "false") || iequals(text, "no")) return false;
  return std::nullopt;
}

bool is_ipv4_literal(std::string_view host) {
  // SECURITY: inet_pton stops at a NUL, so "10.0.0.1\0junk" must not pass as 10.0.0.1.
  if (host.find('\0') != std::string_view::npos) return false;
  std::array<unsigned char, 4> out{};
  return inet_pton(AF_INET, std::string(host).c_str(), out.data()) == 1;
}

bool is_ipv6_literal(std::string_view host) {
  if (host.find('\0') != std::string_view::npos) return false;
  std::array<unsigned char, 16> out{};
  return inet_pton(AF_INET6, std::string(host).c_str(), out.data()) == 1;
}

bool is_wildcard_host(std::string_view host) {
  return same_ip(host, "0.0.0.0") || same_ip(host, "::");
}

bool same_ip(std::string_view a, std::string_view b) {
  std::array<unsigned char, 16> left{};
  std::array<unsigned char, 16> right{};
  const std::string sa(a);
  const std::string sb(b);
  for (int family : {AF_INET, AF_INET6}) {
    if (inet_pton(family, sa.c_str(), left.data()) == 1 &&
        inet_pton(family, sb.c_str(), right.data()) == 1) {
      return left == right;
    }
  }
  return false;
}

std::optional<std::string> cidr_error(std::string_view text) {
  const auto slash = text.find('/');
  const std::string address(text.substr(0, slash));
  std::array<unsigned char, 16> bytes{};
  if (address.find('\0') != std::string::npos) {
    return "invalid CIDR '" + std::string(text) + "' (use e.g. 10.0.0.0/8 or ::1/128)";
  }
  int bits = 0;
  if (inet_pton(AF_INET, address.c_str(), bytes.data()) == 1) {
    bits = 32;
  } else if (inet_pton(AF_INET6, address.c_str(), bytes.data()) == 1) {
    bits = 128;
  } else {
    return "invalid CIDR '" + std::string(text) + "' (use e.g. 10.0.0.0/8 or ::1/128)";
  }
  if (slash == std::string_view::npos) return std::nullopt;  // a single address
  const auto prefix_text = text.substr(slash + 1);
  // No leading zeros: policy::Cidr::parse, which matches clients, refuses them.
  auto prefix = prefix_text.size() <= 3 && (prefix_text.size() <= 1 || prefix_text[0] != '0')
                    ? parse_uint(prefix_text)
                    : std::nullopt;
  if (!prefix || *prefix > static_cast<uint64_t>(bits)) {
    return "invalid prefix length in CIDR '" + std::string(text) + "' (0 to " +
           std::to_string(bits) + ")";
  }
  // SECURITY: "10.0.0.1/8" is usually a typo for a narrower range; refusing it keeps an
  // access rule from silently matching more clients than its author meant.
  for (int bit = static_cast<int>(*prefix); bit < bits; ++bit) {
    if (bytes[static_cast<std::size_t>(bit / 8)] & (0x80 >> (bit % 8))) {
      return "CIDR '" + std::string(text) + "' has host bits set after the /" +
             std::to_string(*prefix) + " prefix";
    }
  }
  return std::nullopt;
}

}  // namespace ftpsgate::config
