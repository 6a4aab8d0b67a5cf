#include <doctest/doctest.h>

#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "tunnel/agent_protocol.h"
#include "tunnel/target_allowlist.h"

using namespace ftpsgate::tunnel;

namespace {

TargetAllowlist allowlist(const std::vector<std::string>& entries) {
  std::string error;
  auto list = TargetAllowlist::parse(entries, error);
  REQUIRE_MESSAGE(list.has_value(), error);
  CHECK(error.empty());
  return *list;
}

// Whether the request line's target passes: what the agent does with a CONNECT.
bool allows(const TargetAllowlist& list, const std::string& target) {
  const auto parsed = parse_line("CONNECT " + target + " 1 data\r\n");
  if (!parsed.message) return false;
  return list.allowed(parsed.message->connect.host, parsed.message->connect.port);
}

// Each target with whether the list must allow it.
void check_targets(const TargetAllowlist& list, std::initializer_list<std::pair<const char*, bool>> cases) {
  for (const auto& [target, expected] : cases) CHECK_MESSAGE(allows(list, target) == expected, target);
}

std::string entry_error(const std::string& text) {
  std::string error;
  const auto entry = TargetEntry::parse(text, error);
  CHECK_FALSE(entry.has_value());
  return error;
}

}  // namespace

TEST_CASE("malformed target entries are refused with the config message") {
  const char* bad[] = {
      "127.0.0.1",
      "127.0.0.1:",
      "127.0.0.1:0",
      "127.0.0.1:65536",
      "127.0.0.1:021",
      "127.0.0.1:21-",
      "127.0.0.1:-21",
      "127.0.0.1:30100-30000",
      "127.0.0.1:1-2-3",
      "127.1:21",
      "010.0.0.1:21",
      "0x7f000001:21",
      "0.0.0.0:21",
      "::1:21",
      "[::ffff:127.0.0.1]:21",
      "[fe80::1%eth0]:21",
      "[::]:21",
      "10.0.0.0/33:21",
      "10.0.0.0/024:21",
      "010.0.0.0/24:21",
      "[10.0.0.0/24]:21",
      "fd00::/64:21",
      "[fd00::/129]:21",
      "ftp_x.example:21",
      "ftp.example.:21",
      "*.corp.example:21",
      ":21",
      "",
      "host name:21",
  };
  for (const char* text : bad) {
    const std::string error = entry_error(text);
    CHECK_MESSAGE(
        error.rfind("invalid target '" + std::string(text) + "' (use host:port, host:lo-hi or CIDR:port)", 0) == 0,
        text);
  }
  std::string error;
  CHECK_FALSE(TargetAllowlist::parse({"127.0.0.1:21", "127.1:21"}, error).has_value());
  CHECK(error.find("'127.1:21'") != std::string::npos);
}

TEST_CASE("an address entry allows that address and port only") {
  const auto list = allowlist({"127.0.0.1:21"});
  check_targets(list, {
                          {"127.0.0.1:21", true},
                          {"127.0.0.1:22", false},
                          {"127.0.0.2:21", false},
                          {"[::1]:21", false},
                          {"localhost:21", false},
                      });
}

TEST_CASE("a compromised gateway cannot reach 127.0.0.1 through another spelling") {
  const auto list = allowlist({"127.0.0.1:21", "10.0.0.0/24:21"});
  for (const char* target : {"127.1:21", "0x7f000001:21", "2130706433:21", "0177.0.0.1:21", "127.000.000.001:21",
                             "[::ffff:127.0.0.1]:21", "[::127.0.0.1]:21", "[::ffff:7f00:1]:21", "0.0.0.0:21", "[::]:21",
                             "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:021", "127.0.0.1.:21"}) {
    CHECK_FALSE_MESSAGE(allows(list, target), target);
  }
  // Hand-made hosts that the parser would never return are refused as well.
  CHECK_FALSE(list.allowed(Host{Host::Kind::kIpv6, "::ffff:127.0.0.1"}, 21));
  CHECK_FALSE(list.allowed(Host{Host::Kind::kIpv4, "127.1"}, 21));
  CHECK_FALSE(list.allowed(Host{Host::Kind::kName, "127.0.0.1"}, 21));
  CHECK_FALSE(list.allowed(Host{Host::Kind::kIpv4, "127.0.0.1"}, 0));
  CHECK(list.allowed(Host{Host::Kind::kIpv4, "127.0.0.1"}, 21));
}

TEST_CASE("CIDR entries and port ranges") {
  const auto list = allowlist({"10.0.0.0/24:21", "10.0.0.5:30000-30100", "[fd00::/64]:21"});
  check_targets(list, {
                          {"10.0.0.0:21", true},
                          {"10.0.0.255:21", true},
                          {"10.0.1.0:21", false},
                          {"10.0.0.7:30000", false},
                          {"10.0.0.5:30000", true},
                          {"10.0.0.5:30100", true},
                          {"10.0.0.5:29999", false},
                          {"10.0.0.5:30101", false},
                          {"[fd00::1234]:21", true},
                          {"[fd00:0:0:1::1]:21", false},
                          {"[fd00::1234]:22", false},
                      });
  // Host bits written in a network are masked, as in the gateway's `from` lists.
  CHECK(allows(allowlist({"10.9.9.9/8:21"}), "10.200.0.1:21"));
}

TEST_CASE("IPv6 address entries, in any inet_pton spelling") {
  const auto list = allowlist({"[::1]:21", "[2001:DB8:0::7]:990"});
  check_targets(list, {
                          {"[::1]:21", true},
                          {"[0:0::1]:21", true},
                          {"[2001:db8::7]:990", true},
                          {"127.0.0.1:21", false},
                          {"[::2]:21", false},
                      });
}

TEST_CASE("names match name entries exactly and case-insensitively, never addresses") {
  const auto list = allowlist({"ftp.corp.example:21", "legacy.example.internal:21"});
  check_targets(list, {
                          {"ftp.corp.example:21", true},
                          {"FTP.Corp.Example:21", true},
                          {"LEGACY.example.internal:21", true},
                          {"ftp.corp.example:22", false},
                          {"corp.example:21", false},
                          {"x.ftp.corp.example:21", false},
                          {"ftp.corp.example.evil:21", false},
                          {"ftp.corp.exampl:21", false},
                          {"ftp.corp.example.:21", false},
                      });
  // An IP entry never lets a name through, nor the reverse.
  CHECK_FALSE(allows(allowlist({"0.0.0.0/0:21"}), "ftp.corp.example:21"));
  CHECK(allows(allowlist({"0.0.0.0/0:21"}), "192.0.2.1:21"));
  CHECK_FALSE(allows(allowlist({"localhost:21"}), "127.0.0.1:21"));
  // An overlong name is refused before any matching.
  const std::string overlong =
      std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(63, 'c') + "." + std::string(63, 'd');
  CHECK_FALSE(allows(allowlist({"ftp.corp.example:21"}), overlong + ":21"));
  CHECK(entry_error(overlong + ":21").find("253") != std::string::npos);
}

TEST_CASE("an empty allowlist allows nothing") {
  const auto list = allowlist({});
  CHECK(list.size() == 0);
  check_targets(list, {
                          {"127.0.0.1:21", false},
                          {"ftp.corp.example:21", false},
                      });
}
