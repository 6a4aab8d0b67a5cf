// HAProxy PROXY protocol v1 (text) and v2 (binary) header parser: pure, so it is unit
// tested and fuzzed. Spec: https://www.haproxy.org/download/2.6/doc/proxy-protocol.txt
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ftpsgate::proxy {

// v1's longest line (§2.1) and our cap on v2 (16-byte preamble + addresses + TLVs).
inline constexpr std::size_t kMaxV1Length = 107;
inline constexpr std::size_t kMaxV2Length = 16 + 2048;

struct ProxyHeader {
  // false for v2 LOCAL and v1 UNKNOWN (e.g. the balancer's own health check): the
  // connection's real addresses stand.
  bool has_addresses = false;
  std::string source_ip;  // numeric, IPv6 without brackets
  uint16_t source_port = 0;
  std::string destination_ip;
  uint16_t destination_port = 0;
  int version = 0;           // 1 or 2
  std::size_t length = 0;    // bytes the header takes on the wire
};

enum class ParseStatus { kNeedMore, kDone, kInvalid };

struct ParseResult {
  ParseStatus status = ParseStatus::kNeedMore;
  ProxyHeader header;  // when kDone
  std::string error;   // when kInvalid
};

// `bytes` is what has arrived so far from the start of the connection (it may hold more
// than the header). kNeedMore: call again with more bytes.
ParseResult parse_proxy_header(std::string_view bytes);

}  // namespace ftpsgate::proxy
