// Text parsers for config values that have no place in the public loader interface.
// Pure: the standard library and inet_pton only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ftpsgate::config {

struct PortRange {
  uint16_t min = 0;
  uint16_t max = 0;
};

// "30000-30999" or "30000"; ports 1..65535, min <= max.
std::optional<PortRange> parse_port_range(std::string_view text);

// true/false/yes/no in any letter case. YAML 1.1 "on"/"off" are not booleans here:
// they are tls_required/verify_client values and must stay strings.
std::optional<bool> parse_bool(std::string_view text);

// Decimal digits only, no sign, no overflow.
std::optional<uint64_t> parse_uint(std::string_view text);

bool is_ipv4_literal(std::string_view host);
bool is_ipv6_literal(std::string_view host);  // without brackets
inline bool is_ip_literal(std::string_view host) {
  return is_ipv4_literal(host) || is_ipv6_literal(host);
}
bool is_wildcard_host(std::string_view host);  // 0.0.0.0 or ::
// Same address in binary form (so "::1" and "0:0::1" compare equal).
bool same_ip(std::string_view a, std::string_view b);

// Why `text` is not a CIDR ("10.0.0.0/8", "::1/128", or a bare address), or nullopt
// when it is one.
std::optional<std::string> cidr_error(std::string_view text);

}  // namespace ftpsgate::config
