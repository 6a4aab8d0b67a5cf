// Client classes: ordered CIDR matches, first wins; per-user tls_required overrides.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ftpsgate/config.h"

namespace ftpsgate::policy {

struct IpAddress {
  bool v6 = false;
  std::array<uint8_t, 16> bytes{};  // IPv4 uses the first 4
  static std::optional<IpAddress> parse(std::string_view text);  // no brackets, no port
  // IPv4-mapped IPv6 (::ffff:a.b.c.d) becomes IPv4.
  IpAddress unmapped() const;
  bool operator==(const IpAddress&) const = default;
  std::string to_string() const;
};

struct Cidr {
  IpAddress network;
  int prefix = 0;
  // "10.0.0.0/8", "::1/128", "1.2.3.4" (full prefix). Host bits are masked off; prefix
  // 0..32 / 0..128, digits only.
  static std::optional<Cidr> parse(std::string_view text);
  // Same family only; an IPv4-mapped IPv6 address also matches IPv4 rules via unmapped().
  bool contains(const IpAddress& address) const;
};

// Whether one of the CIDRs contains the address (unparsable rules match nothing).
bool any_contains(const std::vector<std::string>& cidrs, const IpAddress& address);
bool any_contains(const std::vector<std::string>& cidrs, std::string_view address);

// First class whose `from` contains the client (empty `from` matches all); nullptr if none.
const ClassConfig* select_class(const std::vector<ClassConfig>& classes, const IpAddress& client);

// tls_required in force for this user (allow_per_user + users: overrides).
TlsRequired effective_tls_required(const ClassConfig& cls, std::string_view user);

}  // namespace ftpsgate::policy
