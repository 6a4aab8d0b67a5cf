#include "tunnel/target_allowlist.h"

#include <cstddef>

namespace ftpsgate::tunnel {

namespace {

bool ascii_case_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto lower = [](char ch) { return ch >= 'A' && ch <= 'Z' ? static_cast<char>(ch - 'A' + 'a') : ch; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

// "10.0.0.0/24" or "[fd00::/64]": the address spelled as parse_host wants it (canonical
// IPv4, IPv6 only in brackets, no zone id), the prefix as policy::Cidr reads it.
std::optional<policy::Cidr> parse_network(std::string_view text, std::string& why) {
  const bool bracketed = text.size() >= 2 && text.front() == '[' && text.back() == ']';
  const std::string_view inner = bracketed ? text.substr(1, text.size() - 2) : text;
  const std::string_view address_text = inner.substr(0, inner.find('/'));
  const auto address = policy::IpAddress::parse(address_text);
  auto cidr = policy::Cidr::parse(inner);
  if (!address || !cidr || address->v6 != bracketed || (!address->v6 && address->to_string() != address_text)) {
    why = "not a network like 10.0.0.0/24 or [fd00::/64]";
    return std::nullopt;
  }
  return cidr;
}

}  // namespace

std::optional<TargetEntry> TargetEntry::parse(std::string_view text, std::string& error) {
  const auto refuse = [&](std::string_view why) {
    error = "invalid target '" + std::string(text) + "' (use host:port, host:lo-hi or CIDR:port): " + std::string(why);
    return std::nullopt;
  };
  const std::size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return refuse("no port");
  const std::string_view host_text = text.substr(0, colon);
  const std::string_view ports = text.substr(colon + 1);

  TargetEntry out;
  const std::size_t dash = ports.find('-');
  const auto low = parse_port(ports.substr(0, dash));
  const auto high = dash == std::string_view::npos ? low : parse_port(ports.substr(dash + 1));
  if (!low || !high) return refuse("ports are 1-65535 without leading zeros");
  if (*low > *high) return refuse("port range from high to low");
  out.port_low = *low;
  out.port_high = *high;

  std::string why;
  if (host_text.find('/') != std::string_view::npos) {
    out.network = parse_network(host_text, why);
    if (!out.network) return refuse(why);
    return out;
  }
  auto host = parse_host(host_text, why);
  if (!host) return refuse(why);
  if (host->kind == Host::Kind::kName) {
    out.name = host->text;
  } else {
    out.network = policy::Cidr::parse(host->text);  // one address: the full prefix
  }
  return out;
}

bool TargetEntry::matches(const Host& host, uint16_t port) const {
  if (port < port_low || port > port_high) return false;
  // SECURITY: names match names and addresses match networks, never across.
  if (host.kind == Host::Kind::kName) return !name.empty() && ascii_case_equal(name, host.text);
  const auto address = policy::IpAddress::parse(host.text);
  return network && address && address->v6 == (host.kind == Host::Kind::kIpv6) && network->contains(*address);
}

std::optional<TargetAllowlist> TargetAllowlist::parse(const std::vector<std::string>& entries, std::string& error) {
  TargetAllowlist out;
  for (const auto& text : entries) {
    auto entry = TargetEntry::parse(text, error);
    if (!entry) return std::nullopt;
    out.add(std::move(*entry));
  }
  error.clear();
  return out;
}

bool TargetAllowlist::allowed(const Host& host, uint16_t port) const {
  // SECURITY: fail closed on a host that is not what the CONNECT parser returns (a
  // hand-made "::ffff:127.0.0.1" would reach IPv4 entries through Cidr::contains).
  std::string error;
  if (port == 0 || parse_host(host.to_string(), error) != host) return false;
  for (const auto& entry : entries_) {
    if (entry.matches(host, port)) return true;
  }
  return false;
}

}  // namespace ftpsgate::tunnel
