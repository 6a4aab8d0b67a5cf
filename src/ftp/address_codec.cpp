#include "ftp/address_codec.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <array>
#include <cassert>
#include <cstddef>

namespace ftpsgate::ftp {

namespace {

bool is_digit(char ch) { return ch >= '0' && ch <= '9'; }

// 1..max_digits decimal digits, nothing else (no sign, no space), value <= max_value.
std::optional<unsigned> parse_number(std::string_view text, std::size_t max_digits, unsigned max_value) {
  if (text.empty() || text.size() > max_digits) return std::nullopt;
  unsigned value = 0;
  for (const char ch : text) {
    if (!is_digit(ch)) return std::nullopt;
    value = value * 10 + static_cast<unsigned>(ch - '0');
  }
  if (value > max_value) return std::nullopt;
  return value;
}

std::optional<uint16_t> parse_port(std::string_view text) {
  const auto value = parse_number(text, 5, 65535);
  // SECURITY: port 0 is never a valid data endpoint.
  if (!value || *value == 0) return std::nullopt;
  return static_cast<uint16_t>(*value);
}

// Exactly "h1,h2,h3,h4,p1,p2": six 1..3 digit numbers 0..255, single commas.
std::optional<HostAndPort> parse_six_numbers(std::string_view text) {
  std::array<unsigned, 6> n{};
  std::size_t field = 0;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= text.size(); ++i) {
    if (i < text.size() && text[i] != ',') continue;
    if (field == n.size()) return std::nullopt;  // a seventh field
    const auto value = parse_number(text.substr(start, i - start), 3, 255);
    if (!value) return std::nullopt;
    n[field++] = *value;
    start = i + 1;
  }
  if (field != n.size()) return std::nullopt;
  const unsigned port = n[4] * 256 + n[5];
  if (port == 0) return std::nullopt;
  HostAndPort out;
  out.host = std::to_string(n[0]) + "." + std::to_string(n[1]) + "." + std::to_string(n[2]) + "." +
             std::to_string(n[3]);
  out.port = static_cast<uint16_t>(port);
  return out;
}

// Canonical text of an address of the given family, or nullopt.
std::optional<std::string> canonical_address(int family, std::string_view text) {
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  // SECURITY: inet_pton stops at a NUL, so "1.2.3.4\0junk" must not pass as 1.2.3.4.
  if (text.find('\0') != std::string_view::npos) return std::nullopt;
  const std::string copy(text);  // inet_pton needs a terminated string
  std::array<unsigned char, sizeof(in6_addr)> raw{};
  if (inet_pton(family, copy.c_str(), raw.data()) != 1) return std::nullopt;
  std::array<char, INET6_ADDRSTRLEN> buf{};
  if (inet_ntop(family, raw.data(), buf.data(), buf.size()) == nullptr) return std::nullopt;
  return std::string(buf.data());
}

std::string six_numbers(std::string_view ipv4, uint16_t port) {
  auto host = canonical_address(AF_INET, ipv4);
  // Callers pass validated addresses (config check, the socket's own address).
  assert(host.has_value());
  if (!host) host = "0.0.0.0";
  for (char& ch : *host) {
    if (ch == '.') ch = ',';
  }
  return *host + "," + std::to_string(port / 256) + "," + std::to_string(port % 256);
}

bool is_ascii_case_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const char x = (a[i] >= 'a' && a[i] <= 'z') ? static_cast<char>(a[i] - 32) : a[i];
    const char y = (b[i] >= 'a' && b[i] <= 'z') ? static_cast<char>(b[i] - 32) : b[i];
    if (x != y) return false;
  }
  return true;
}

// RFC 2428 delimiters are printable ASCII 33..126; digits would make the fields ambiguous.
bool is_delimiter(char ch) { return ch >= 33 && ch <= 126 && !is_digit(ch); }

}  // namespace

std::optional<HostAndPort> parse_pasv_reply(std::string_view reply_text) {
  // Skip the reply code so "227" is never taken as the first number.
  if (reply_text.size() >= 3 && is_digit(reply_text[0]) && is_digit(reply_text[1]) && is_digit(reply_text[2]) &&
      (reply_text.size() == 3 || reply_text[3] == ' ' || reply_text[3] == '-')) {
    reply_text.remove_prefix(3);
  }
  // Servers differ ("(h,h,h,h,p,p)", "=h,h,h,h,p,p", no parentheses): take the first run
  // of digits and commas that is exactly six numbers.
  std::size_t i = 0;
  while (i < reply_text.size()) {
    if (!is_digit(reply_text[i]) && reply_text[i] != ',') {
      ++i;
      continue;
    }
    const std::size_t start = i;
    while (i < reply_text.size() && (is_digit(reply_text[i]) || reply_text[i] == ',')) ++i;
    const bool signed_run = start > 0 && (reply_text[start - 1] == '-' || reply_text[start - 1] == '+');
    if (signed_run) continue;
    if (auto parsed = parse_six_numbers(reply_text.substr(start, i - start))) return parsed;
  }
  return std::nullopt;
}

std::optional<uint16_t> parse_epsv_reply(std::string_view reply_text) {
  // "(|||port|)": the first '(' opens it; all four delimiters identical.
  const std::size_t open = reply_text.find('(');
  if (open == std::string_view::npos) return std::nullopt;
  std::string_view body = reply_text.substr(open + 1);
  const std::size_t close = body.find(')');
  if (close == std::string_view::npos) return std::nullopt;
  body = body.substr(0, close);
  if (body.size() < 5) return std::nullopt;
  const char d = body[0];
  if (!is_delimiter(d) || body[1] != d || body[2] != d || body.back() != d) return std::nullopt;
  return parse_port(body.substr(3, body.size() - 4));
}

std::optional<uint16_t> parse_passive_reply_port(int code, std::string_view reply_text) {
  if (code == 227) {
    if (auto host_port = parse_pasv_reply(reply_text)) return host_port->port;
    return std::nullopt;
  }
  if (code == 229) return parse_epsv_reply(reply_text);
  return std::nullopt;
}

std::string build_pasv_reply(std::string_view ipv4, uint16_t port) {
  return "227 Entering Passive Mode (" + six_numbers(ipv4, port) + ")";
}

std::string build_epsv_reply(uint16_t port) {
  return "229 Entering Extended Passive Mode (|||" + std::to_string(port) + "|)";
}

std::optional<HostAndPort> parse_port_argument(std::string_view argument) {
  return parse_six_numbers(argument);
}

std::string build_port_argument(std::string_view ipv4, uint16_t port) { return six_numbers(ipv4, port); }

std::optional<HostAndPort> parse_eprt_argument(std::string_view argument) {
  // <d><proto><d><address><d><port><d> and nothing else.
  if (argument.size() < 7) return std::nullopt;
  const char d = argument[0];
  if (!is_delimiter(d) || argument.back() != d) return std::nullopt;
  std::array<std::string_view, 3> fields;
  std::string_view rest = argument.substr(1, argument.size() - 2);
  for (std::size_t f = 0; f < fields.size(); ++f) {
    const std::size_t pos = rest.find(d);
    if (f + 1 < fields.size()) {
      if (pos == std::string_view::npos) return std::nullopt;
      fields[f] = rest.substr(0, pos);
      rest.remove_prefix(pos + 1);
    } else {
      if (pos != std::string_view::npos) return std::nullopt;  // extra fields
      fields[f] = rest;
    }
  }
  int family = 0;
  if (fields[0] == "1") {
    family = AF_INET;
  } else if (fields[0] == "2") {
    family = AF_INET6;
  } else {
    return std::nullopt;
  }
  // SECURITY: the address must be a literal of the announced family (no "|1|::1|"),
  // so the anti-bounce comparison with the client address sees what we will connect to.
  auto host = canonical_address(family, fields[1]);
  if (!host) return std::nullopt;
  const auto port = parse_port(fields[2]);
  if (!port) return std::nullopt;
  return HostAndPort{std::move(*host), *port};
}

std::string build_eprt_argument(std::string_view host, uint16_t port) {
  const char* proto = is_ipv4_literal(host) ? "1" : "2";
  return std::string("|") + proto + "|" + std::string(host) + "|" + std::to_string(port) + "|";
}

EpsvArgument parse_epsv_argument(std::string_view argument) {
  EpsvArgument out;
  if (argument.empty()) {
    out.kind = EpsvArgument::Kind::kAny;
  } else if (argument == "1") {
    out.kind = EpsvArgument::Kind::kIpv4;
  } else if (argument == "2") {
    out.kind = EpsvArgument::Kind::kIpv6;
  } else if (is_ascii_case_equal(argument, "ALL")) {
    out.kind = EpsvArgument::Kind::kAll;
  } else {
    out.kind = EpsvArgument::Kind::kUnsupported;
  }
  return out;
}

bool is_ipv4_literal(std::string_view host) { return canonical_address(AF_INET, host).has_value(); }

}  // namespace ftpsgate::ftp
