// Encoders/decoders for the data-channel address commands and replies:
// PASV 227 (RFC 959), EPSV 229 and EPRT (RFC 2428), PORT (RFC 959).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ftpsgate::ftp {

struct HostAndPort {
  std::string host;  // textual IPv4 "a.b.c.d" or IPv6 address
  uint16_t port = 0;
};

// "227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)" -> host, port. Accepts text before and
// after the numbers and missing parentheses, as real servers vary.
std::optional<HostAndPort> parse_pasv_reply(std::string_view reply_text);
// "229 Entering Extended Passive Mode (|||port|)" -> port (delimiter may be any char 33..126).
std::optional<uint16_t> parse_epsv_reply(std::string_view reply_text);
// The port a backend's 227 or 229 reply names (its address is never used); nullopt for
// other codes and for replies not understood.
std::optional<uint16_t> parse_passive_reply_port(int code, std::string_view reply_text);

// Full reply lines (no CRLF). ipv4 must be an IPv4 literal (is_ipv4_literal), else assert.
std::string build_pasv_reply(std::string_view ipv4, uint16_t port);
std::string build_epsv_reply(uint16_t port);

// PORT h1,h2,h3,h4,p1,p2 exactly: numbers 0..255 of 1..3 digits, no signs or spaces, port != 0.
std::optional<HostAndPort> parse_port_argument(std::string_view argument);
std::string build_port_argument(std::string_view ipv4, uint16_t port);
// EPRT |1|132.235.1.2|6275|  or  |2|::1|6275| (any delimiter 33..126 except digits).
// The address must be of the announced family; host comes back in canonical inet_ntop form.
std::optional<HostAndPort> parse_eprt_argument(std::string_view argument);
std::string build_eprt_argument(std::string_view host, uint16_t port);

// EPSV argument: "" | "1" | "2" | "ALL" (case-insensitive).
struct EpsvArgument {
  enum class Kind { kAny, kIpv4, kIpv6, kAll, kUnsupported };
  Kind kind = Kind::kAny;
};
EpsvArgument parse_epsv_argument(std::string_view argument);

bool is_ipv4_literal(std::string_view host);

}  // namespace ftpsgate::ftp
