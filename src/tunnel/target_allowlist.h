// The agent's `targets` allowlist (docs/agent-design.md 2.3, 4), pure: which host:port pairs
// a CONNECT may reach. Entries, in the agent's config:
//   127.0.0.1:21             one IPv4 address, one port
//   127.0.0.1:40000-40049    a port range (vsftpd's pasv_min_port..pasv_max_port)
//   10.20.0.0/24:21          an IPv4 network
//   [::1]:21  [fd00::/64]:21 IPv6, in brackets (the prefix inside them)
//   ftp.corp.example:21      a DNS name, matched exactly and case-insensitively
// SECURITY: an IP-literal target matches only IP/CIDR entries and a name only name entries,
// and nothing is resolved here, so DNS can never widen the list. The hosts follow the CONNECT
// grammar (tunnel::parse_host): no "127.1", v4-mapped IPv6 or zone ids.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "policy/client_class.h"
#include "tunnel/agent_protocol.h"

namespace ftpsgate::tunnel {

struct TargetEntry {
  std::optional<policy::Cidr> network;  // IP entries
  std::string name;                     // name entries (as written)
  uint16_t port_low = 0;
  uint16_t port_high = 0;
  // nullopt with `error` = "invalid target 'x' (use host:port, host:lo-hi or CIDR:port): why".
  static std::optional<TargetEntry> parse(std::string_view text, std::string& error);
  bool matches(const Host& host, uint16_t port) const;
};

class TargetAllowlist {
 public:
  // All entries or none: the first error, the list left empty.
  static std::optional<TargetAllowlist> parse(const std::vector<std::string>& entries, std::string& error);
  void add(TargetEntry entry) { entries_.push_back(std::move(entry)); }
  // Whether a parsed CONNECT target may be reached (an empty list allows nothing).
  bool allowed(const Host& host, uint16_t port) const;
  std::size_t size() const { return entries_.size(); }
  const std::vector<TargetEntry>& entries() const { return entries_; }

 private:
  std::vector<TargetEntry> entries_;
};

}  // namespace ftpsgate::tunnel
