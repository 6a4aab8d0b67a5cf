#include "policy/client_class.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstddef>

namespace ftpsgate::policy {

namespace {

constexpr std::size_t kMaxAddressText = INET6_ADDRSTRLEN;  // incl. the terminator

bool is_digit(char ch) { return ch >= '0' && ch <= '9'; }

// Decimal prefix length: 1..3 digits, no sign, no leading zero (except "0").
std::optional<int> parse_prefix(std::string_view text, int max_prefix) {
  if (text.empty() || text.size() > 3 || (text.size() > 1 && text[0] == '0')) return std::nullopt;
  int value = 0;
  for (const char ch : text) {
    if (!is_digit(ch)) return std::nullopt;
    value = value * 10 + (ch - '0');
  }
  if (value > max_prefix) return std::nullopt;
  return value;
}

// The first `prefix` bits of a and b are equal.
bool same_prefix(const std::array<uint8_t, 16>& a, const std::array<uint8_t, 16>& b, int prefix) {
  const auto full = static_cast<std::size_t>(prefix / 8);
  for (std::size_t i = 0; i < full; ++i) {
    if (a[i] != b[i]) return false;
  }
  const int rest = prefix % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<uint8_t>(0xFF << (8 - rest));
  return (a[full] & mask) == (b[full] & mask);
}

bool matches(const Cidr& cidr, const IpAddress& address) {
  // SECURITY: families never mix here (an IPv4 rule compared with IPv6 bytes would match
  // arbitrary addresses); IPv6 clients reach IPv4 rules only as unmapped() in contains().
  if (cidr.network.v6 != address.v6) return false;
  return same_prefix(cidr.network.bytes, address.bytes, cidr.prefix);
}

}  // namespace

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  // SECURITY: inet_pton stops at a NUL, so "10.0.0.1\0junk" must not pass as 10.0.0.1.
  if (text.empty() || text.size() >= kMaxAddressText || text.find('\0') != std::string_view::npos) {
    return std::nullopt;
  }
  const std::string copy(text);
  IpAddress out;
  in_addr v4{};
  if (inet_pton(AF_INET, copy.c_str(), &v4) == 1) {
    static_assert(sizeof(v4) == 4);
    const auto* raw = reinterpret_cast<const uint8_t*>(&v4);
    for (std::size_t i = 0; i < 4; ++i) out.bytes[i] = raw[i];
    return out;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, copy.c_str(), &v6) == 1) {
    static_assert(sizeof(v6) == 16);
    const auto* raw = reinterpret_cast<const uint8_t*>(&v6);
    out.v6 = true;
    for (std::size_t i = 0; i < 16; ++i) out.bytes[i] = raw[i];
    return out;
  }
  return std::nullopt;
}

IpAddress IpAddress::unmapped() const {
  if (!v6) return *this;
  for (std::size_t i = 0; i < 10; ++i) {
    if (bytes[i] != 0) return *this;
  }
  if (bytes[10] != 0xFF || bytes[11] != 0xFF) return *this;
  IpAddress out;  // ::ffff:a.b.c.d -> a.b.c.d, remaining bytes zero so == works
  for (std::size_t i = 0; i < 4; ++i) out.bytes[i] = bytes[12 + i];
  return out;
}

std::string IpAddress::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (inet_ntop(v6 ? AF_INET6 : AF_INET, bytes.data(), buf, sizeof(buf)) == nullptr) return {};
  return buf;
}

std::optional<Cidr> Cidr::parse(std::string_view text) {
  const std::size_t slash = text.find('/');
  auto address = IpAddress::parse(text.substr(0, slash));
  if (!address) return std::nullopt;
  const int max_prefix = address->v6 ? 128 : 32;
  Cidr out;
  out.prefix = max_prefix;
  if (slash != std::string_view::npos) {
    const auto prefix = parse_prefix(text.substr(slash + 1), max_prefix);
    if (!prefix) return std::nullopt;
    out.prefix = *prefix;
  }
  // Host bits written in the rule ("10.1.2.3/8") are accepted and masked off.
  const std::size_t size = address->v6 ? 16 : 4;
  for (std::size_t i = 0; i < size; ++i) {
    const int bits_here = out.prefix - static_cast<int>(i) * 8;
    if (bits_here >= 8) continue;
    address->bytes[i] = bits_here <= 0 ? 0 : static_cast<uint8_t>(address->bytes[i] & (0xFF << (8 - bits_here)));
  }
  out.network = *address;
  return out;
}

bool Cidr::contains(const IpAddress& address) const {
  // A dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d; they match IPv4 rules
  // through unmapped() and still match IPv6 rules written for the mapped range.
  return matches(*this, address) || matches(*this, address.unmapped());
}

bool any_contains(const std::vector<std::string>& cidrs, const IpAddress& address) {
  for (const auto& text : cidrs) {
    // A rule that does not parse matches nothing (the config check rejects it first).
    const auto cidr = Cidr::parse(text);
    if (cidr && cidr->contains(address)) return true;
  }
  return false;
}

bool any_contains(const std::vector<std::string>& cidrs, std::string_view address) {
  const auto parsed = IpAddress::parse(address);
  return parsed && any_contains(cidrs, *parsed);
}

const ClassConfig* select_class(const std::vector<ClassConfig>& classes, const IpAddress& client) {
  for (const auto& cls : classes) {
    if (cls.from.empty() || any_contains(cls.from, client)) return &cls;
  }
  return nullptr;
}

TlsRequired effective_tls_required(const ClassConfig& cls, std::string_view user) {
  if (!cls.allow_per_user) return cls.tls_required;
  // User names match exactly (case-sensitive), as the backend's accounts do.
  const auto it = cls.users.find(std::string(user));
  if (it == cls.users.end() || !it->second.tls_required) return cls.tls_required;
  return *it->second.tls_required;
}

}  // namespace ftpsgate::policy
