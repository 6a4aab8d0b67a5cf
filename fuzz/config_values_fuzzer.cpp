// libFuzzer target: the config value parsers (src/config/config_loader.h: parse_duration,
// parse_size, parse_host_port; src/config/value_parsers.h). Each sees the whole input.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "config/config_loader.h"
#include "config/value_parsers.h"
#include "ftp/address_codec.h"
#include "fuzz_check.h"
#include "policy/client_class.h"

namespace {

using namespace ftpsgate;

bool all_digits(std::string_view text) {
  return !text.empty() && text.find_first_not_of("0123456789") == std::string_view::npos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  if (const auto value = config::parse_uint(text)) {
    FUZZ_CHECK(all_digits(text));
    FUZZ_CHECK(std::to_string(*value) == text.substr(text.find_first_not_of('0') == std::string_view::npos
                                                         ? text.size() - 1
                                                         : text.find_first_not_of('0')));
  }
  if (const auto duration = config::parse_duration(text)) FUZZ_CHECK(duration->count() >= 0);
  if (const auto bytes = config::parse_size(text)) {
    if (all_digits(text)) FUZZ_CHECK(config::parse_uint(text) == *bytes);
  }
  if (const auto range = config::parse_port_range(text)) {
    FUZZ_CHECK(range->min >= 1 && range->min <= range->max);
  }
  if (config::parse_bool(text)) FUZZ_CHECK(text.size() >= 2 && text.size() <= 5);  // yes/no/true/false

  // The config's IP checks and the FTP codec's must agree: a masquerade address the
  // config accepts is put into 227 replies by the codec.
  FUZZ_CHECK(config::is_ipv4_literal(text) == ftp::is_ipv4_literal(text));

  if (const auto hp = config::parse_host_port(text)) {
    FUZZ_CHECK(hp->port != 0 && !hp->host.empty());
    // SECURITY: no NUL for inet_pton or getaddrinfo to stop at.
    FUZZ_CHECK(hp->host.find('\0') == std::string::npos);
    const auto again = config::parse_host_port(hp->to_string());
    FUZZ_CHECK(again && again->host == hp->host && again->port == hp->port);
    if (config::is_ip_literal(hp->host)) FUZZ_CHECK(config::same_ip(hp->host, hp->host));
  }

  if (!config::cidr_error(text)) {
    const std::string address(text.substr(0, text.find('/')));
    FUZZ_CHECK(config::is_ip_literal(address));
    // A 'from' entry the config check accepts is matched at run time by policy::Cidr,
    // which skips (matches nothing with) an entry it cannot parse.
    FUZZ_CHECK(policy::Cidr::parse(text).has_value());
  }
  return 0;
}
