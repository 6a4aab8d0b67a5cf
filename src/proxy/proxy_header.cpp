#include "proxy/proxy_header.h"

#include <arpa/inet.h>

#include <array>
#include <charconv>
#include <vector>

namespace ftpsgate::proxy {

namespace {

constexpr std::string_view kV2Signature{"\r\n\r\n\0\r\nQUIT\n", 12};
constexpr std::string_view kV1Prefix{"PROXY "};

ParseResult invalid(std::string error) { return {ParseStatus::kInvalid, {}, std::move(error)}; }

// The part of `bytes` that could still become `prefix`: true while they agree.
bool could_be(std::string_view bytes, std::string_view prefix) {
  const std::size_t n = std::min(bytes.size(), prefix.size());
  return bytes.substr(0, n) == prefix.substr(0, n);
}

std::vector<std::string_view> split_spaces(std::string_view line) {
  std::vector<std::string_view> words;
  std::size_t start = 0;
  while (start <= line.size()) {
    const std::size_t space = line.find(' ', start);
    const std::size_t end = space == std::string_view::npos ? line.size() : space;
    words.push_back(line.substr(start, end - start));
    if (space == std::string_view::npos) break;
    start = space + 1;
  }
  return words;
}

bool parse_port(std::string_view text, uint16_t& port) {
  // v1: decimal without leading zeros (§2.1), 0..65535.
  if (text.empty() || text.size() > 5 || (text.size() > 1 && text[0] == '0')) return false;
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value > 65535) return false;
  port = static_cast<uint16_t>(value);
  return true;
}

bool canonical_ip(int family, std::string_view text, std::string& out) {
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return false;
  const std::string copy(text);
  std::array<unsigned char, 16> raw{};
  if (inet_pton(family, copy.c_str(), raw.data()) != 1) return false;
  char buffer[INET6_ADDRSTRLEN] = {};
  if (inet_ntop(family, raw.data(), buffer, sizeof(buffer)) == nullptr) return false;
  out = buffer;
  return true;
}

ParseResult parse_v1(std::string_view bytes) {
  const std::size_t eol = bytes.find("\r\n");
  if (eol == std::string_view::npos) {
    if (bytes.size() >= kMaxV1Length) return invalid("PROXY v1 line longer than 107 bytes");
    if (bytes.find('\n') != std::string_view::npos) return invalid("PROXY v1 line not ended by CRLF");
    return {};
  }
  if (eol + 2 > kMaxV1Length) return invalid("PROXY v1 line longer than 107 bytes");
  if (bytes.substr(0, eol).find('\n') != std::string_view::npos) return invalid("PROXY v1 line not ended by CRLF");
  const auto words = split_spaces(bytes.substr(0, eol));
  ParseResult result{ParseStatus::kDone, {}, ""};
  result.header.version = 1;
  result.header.length = eol + 2;
  if (words.size() >= 2 && words[1] == "UNKNOWN") return result;  // the rest is ignored (§2.1)
  if (words.size() != 6) return invalid("PROXY v1 line needs 6 fields");
  int family = 0;
  if (words[1] == "TCP4") {
    family = AF_INET;
  } else if (words[1] == "TCP6") {
    family = AF_INET6;
  } else {
    return invalid("PROXY v1 unknown protocol '" + std::string(words[1]) + "'");
  }
  auto& h = result.header;
  if (!canonical_ip(family, words[2], h.source_ip) || !canonical_ip(family, words[3], h.destination_ip)) {
    return invalid("PROXY v1 bad address");
  }
  if (!parse_port(words[4], h.source_port) || !parse_port(words[5], h.destination_port)) {
    return invalid("PROXY v1 bad port");
  }
  h.has_addresses = true;
  return result;
}

uint16_t be16(const unsigned char* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }

ParseResult parse_v2(std::string_view bytes) {
  if (bytes.size() < 16) return {};
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const unsigned version = p[12] >> 4;
  const unsigned command = p[12] & 0x0F;
  if (version != 2) return invalid("PROXY v2 bad version");
  if (command > 1) return invalid("PROXY v2 bad command");
  const std::size_t length = 16 + be16(p + 14);
  if (length > kMaxV2Length) return invalid("PROXY v2 header too long");
  if (bytes.size() < length) return {};

  ParseResult result{ParseStatus::kDone, {}, ""};
  result.header.version = 2;
  result.header.length = length;
  if (command == 0) return result;  // LOCAL: the balancer speaking for itself

  const unsigned family = p[13] >> 4;
  const unsigned transport = p[13] & 0x0F;
  if (family == 0) return result;  // UNSPEC: addresses unknown, keep the real ones
  if (transport != 1) return invalid("PROXY v2 transport is not STREAM");
  const unsigned char* a = p + 16;
  auto& h = result.header;
  char buffer[INET6_ADDRSTRLEN] = {};
  if (family == 1) {
    if (length < 16 + 12) return invalid("PROXY v2 IPv4 block too short");
    h.source_ip = inet_ntop(AF_INET, a, buffer, sizeof(buffer));
    h.destination_ip = inet_ntop(AF_INET, a + 4, buffer, sizeof(buffer));
    h.source_port = be16(a + 8);
    h.destination_port = be16(a + 10);
  } else if (family == 2) {
    if (length < 16 + 36) return invalid("PROXY v2 IPv6 block too short");
    h.source_ip = inet_ntop(AF_INET6, a, buffer, sizeof(buffer));
    h.destination_ip = inet_ntop(AF_INET6, a + 16, buffer, sizeof(buffer));
    h.source_port = be16(a + 32);
    h.destination_port = be16(a + 34);
  } else if (family == 3) {
    return result;  // AF_UNIX: no IP to act on; the real addresses stand
  } else {
    return invalid("PROXY v2 unknown address family");
  }
  h.has_addresses = true;
  return result;
}

}  // namespace

ParseResult parse_proxy_header(std::string_view bytes) {
  if (bytes.empty()) return {};
  if (bytes[0] == 'P') {
    if (!could_be(bytes, kV1Prefix)) return invalid("no PROXY protocol header");
    if (bytes.size() < kV1Prefix.size()) return {};
    return parse_v1(bytes);
  }
  if (!could_be(bytes, kV2Signature)) return invalid("no PROXY protocol header");
  if (bytes.size() < kV2Signature.size()) return {};
  return parse_v2(bytes);
}

}  // namespace ftpsgate::proxy
