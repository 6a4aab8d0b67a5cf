// Value parsers of the config layer: durations, sizes, addresses, port ranges, CIDRs,
// tls_required names. Bad input first.
#include <doctest/doctest.h>

#include "config/config_loader.h"
#include "config/value_parsers.h"
#include "ftpsgate/config.h"
#include "ftpsgate/tls_required.h"

using namespace std::chrono_literals;
using ftpsgate::Duration;
using ftpsgate::HostPort;
using ftpsgate::TlsRequired;
namespace cfg = ftpsgate::config;

TEST_CASE("parse_duration refuses malformed durations") {
  for (const char* bad : {"", "s", "10x", "10 s", "-5s", "1.5s", "5M", "10sec", "ms", "+3s",
                          "99999999999999999999s", "9999999999999999h"}) {
    INFO(bad);
    CHECK_FALSE(cfg::parse_duration(bad).has_value());
  }
}

TEST_CASE("parse_duration reads ms, s, m, h and plain seconds") {
  CHECK(cfg::parse_duration("500ms") == Duration(500));
  CHECK(cfg::parse_duration("10s") == Duration(10s));
  CHECK(cfg::parse_duration("5m") == Duration(5min));
  CHECK(cfg::parse_duration("1h") == Duration(1h));
  CHECK(cfg::parse_duration("1800") == Duration(1800s));
  CHECK(cfg::parse_duration("0") == Duration(0));
}

TEST_CASE("parse_size refuses malformed and ambiguous sizes") {
  for (const char* bad : {"", "KiB", "64KB", "64k", "64 KiB", "-1", "1.5MiB", "64kib",
                          "99999999999999999999", "17179869184GiB"}) {
    INFO(bad);
    CHECK_FALSE(cfg::parse_size(bad).has_value());
  }
}

TEST_CASE("parse_size reads bytes and IEC units") {
  CHECK(cfg::parse_size("4096") == 4096u);
  CHECK(cfg::parse_size("4096B") == 4096u);
  CHECK(cfg::parse_size("64KiB") == 65536u);
  CHECK(cfg::parse_size("1MiB") == 1048576u);
  CHECK(cfg::parse_size("2GiB") == std::size_t{2} << 30);
}

TEST_CASE("parse_rate reads SI and IEC rates per second and refuses the rest") {
  CHECK(cfg::parse_rate("10MB/s") == 10'000'000u);
  CHECK(cfg::parse_rate("512KiB/s") == 512u * 1024);
  CHECK(cfg::parse_rate("1GB/s") == 1'000'000'000u);
  CHECK(cfg::parse_rate("2GiB/s") == 2ull << 30);
  CHECK(cfg::parse_rate("2000B/s") == 2000u);
  CHECK(cfg::parse_rate("5kB/s") == 5000u);
  for (const char* bad : {"", "10MB", "10 MB/s", "0MB/s", "MB/s", "10mb/s", "10Mbit/s", "-1MB/s", "10MB/h",
                          "99999999999999999GB/s"}) {
    CAPTURE(bad);
    CHECK_FALSE(cfg::parse_rate(bad).has_value());
  }
}

TEST_CASE("parse_host_port refuses malformed addresses") {
  for (const char* bad : {"",
                          "host",
                          ":21",
                          "host:",
                          "host:0",
                          "host:65536",
                          "host:21x",
                          "::1:21",
                          "[::1]",
                          "[::1]21",
                          "[::1:21",
                          "[nothost]:21",
                          "1.2.3:21",
                          "1.2.3.256:21",
                          "-bad.example:21",
                          "bad-.example:21",
                          "a..b:21",
                          "under_score:21",
                          "host:+21",
                          "[::1]:"}) {
    INFO(bad);
    CHECK_FALSE(cfg::parse_host_port(bad).has_value());
  }
}

TEST_CASE("parse_host_port splits IPv4, IPv6 and host names") {
  auto v4 = cfg::parse_host_port("0.0.0.0:21");
  REQUIRE(v4);
  CHECK(v4->host == "0.0.0.0");
  CHECK(v4->port == 21);

  auto v6 = cfg::parse_host_port("[::1]:2121");
  REQUIRE(v6);
  CHECK(v6->host == "::1");
  CHECK(v6->port == 2121);

  auto name = cfg::parse_host_port("ftp.example.com:65535");
  REQUIRE(name);
  CHECK(name->host == "ftp.example.com");
  CHECK(name->port == 65535);
}

TEST_CASE("HostPort::to_string brackets IPv6 hosts only") {
  CHECK(HostPort{"::1", 21}.to_string() == "[::1]:21");
  CHECK(HostPort{"10.0.0.5", 21}.to_string() == "10.0.0.5:21");
  CHECK(HostPort{"ftp.example.com", 990}.to_string() == "ftp.example.com:990");
  CHECK(cfg::parse_host_port("[2001:db8::5]:21")->to_string() == "[2001:db8::5]:21");
}

TEST_CASE("parse_port_range refuses reversed, empty and out-of-range ranges") {
  for (const char* bad : {"", "-", "30999-30000", "0-10", "1-65536", "30000-", "-30000", "a-b",
                          "30000-30999-31000", "30000 - 30999"}) {
    INFO(bad);
    CHECK_FALSE(cfg::parse_port_range(bad).has_value());
  }
}

TEST_CASE("parse_port_range reads a range or a single port") {
  auto range = cfg::parse_port_range("30000-30999");
  REQUIRE(range);
  CHECK(range->min == 30000);
  CHECK(range->max == 30999);
  auto single = cfg::parse_port_range("30000");
  REQUIRE(single);
  CHECK(single->min == 30000);
  CHECK(single->max == 30000);
}

TEST_CASE("parse_bool accepts true/false/yes/no but not YAML 1.1 on/off") {
  CHECK(cfg::parse_bool("true") == true);
  CHECK(cfg::parse_bool("Yes") == true);
  CHECK(cfg::parse_bool("FALSE") == false);
  CHECK(cfg::parse_bool("no") == false);
  CHECK_FALSE(cfg::parse_bool("on").has_value());
  CHECK_FALSE(cfg::parse_bool("off").has_value());
  CHECK_FALSE(cfg::parse_bool("1").has_value());
  CHECK_FALSE(cfg::parse_bool("").has_value());
}

TEST_CASE("cidr_error explains bad CIDRs and accepts good ones") {
  CHECK(cfg::cidr_error("10.0.0/8") == "invalid CIDR '10.0.0/8' (use e.g. 10.0.0.0/8 or ::1/128)");
  CHECK(cfg::cidr_error("10.0.0.0/33") == "invalid prefix length in CIDR '10.0.0.0/33' (0 to 32)");
  CHECK(cfg::cidr_error("::/129") == "invalid prefix length in CIDR '::/129' (0 to 128)");
  CHECK(cfg::cidr_error("10.0.0.0/") == "invalid prefix length in CIDR '10.0.0.0/' (0 to 32)");
  CHECK(cfg::cidr_error("10.0.0.1/8") == "CIDR '10.0.0.1/8' has host bits set after the /8 prefix");
  CHECK(cfg::cidr_error("2001:db8::1/32") ==
        "CIDR '2001:db8::1/32' has host bits set after the /32 prefix");
  CHECK_FALSE(cfg::cidr_error("10.0.0.0/8").has_value());
  CHECK_FALSE(cfg::cidr_error("0.0.0.0/0").has_value());
  CHECK_FALSE(cfg::cidr_error("::1/128").has_value());
  CHECK_FALSE(cfg::cidr_error("192.0.2.7").has_value());
}

TEST_CASE("same_ip and is_wildcard_host compare addresses in binary form") {
  CHECK(cfg::same_ip("::1", "0:0::1"));
  CHECK_FALSE(cfg::same_ip("127.0.0.1", "127.0.0.2"));
  CHECK_FALSE(cfg::same_ip("127.0.0.1", "::1"));
  CHECK(cfg::is_wildcard_host("0.0.0.0"));
  CHECK(cfg::is_wildcard_host("::"));
  CHECK_FALSE(cfg::is_wildcard_host("127.0.0.1"));
}

TEST_CASE("tls_required names round-trip and nothing else parses") {
  for (const char* name :
       {"on", "off", "ctrl", "data", "!data", "ctrl+!data", "auth", "auth+data", "auth+!data"}) {
    INFO(name);
    auto value = ftpsgate::parse_tls_required(name);
    REQUIRE(value);
    CHECK(ftpsgate::to_string(*value) == name);
  }
  CHECK(ftpsgate::parse_tls_required("!data") == TlsRequired::kNotData);
  CHECK(ftpsgate::parse_tls_required("auth+!data") == TlsRequired::kAuthNotData);
  for (const char* bad : {"", "ON", "yes", "true", "data+ctrl", "auth+ctrl", " on", "!ctrl"}) {
    INFO(bad);
    CHECK_FALSE(ftpsgate::parse_tls_required(bad).has_value());
  }
}

TEST_CASE("Config::find_backend finds by exact name") {
  ftpsgate::Config config;
  config.backends.resize(2);
  config.backends[0].name = "legacy";
  config.backends[1].name = "secure";
  CHECK(config.find_backend("secure") == &config.backends[1]);
  CHECK(config.find_backend("legacy") == &config.backends[0]);
  CHECK(config.find_backend("Legacy") == nullptr);
  CHECK(config.find_backend("") == nullptr);
}

// Found by fuzz/config_values_fuzzer: the config check must agree with what the gateway
// later parses, or a class rule silently matches nobody.
TEST_CASE("CIDRs and addresses with embedded NULs or prefix leading zeros are refused") {
  using namespace std::string_literals;
  CHECK(cfg::cidr_error("198.51.100.0/024").has_value());
  CHECK(cfg::cidr_error("::1/0128").has_value());
  CHECK_FALSE(cfg::cidr_error("198.51.100.0/24").has_value());
  CHECK_FALSE(cfg::cidr_error("0.0.0.0/0").has_value());
  CHECK(cfg::cidr_error("10.0.0.0\0/8"s).has_value());
  CHECK_FALSE(cfg::is_ipv4_literal("203.0.113.7\0"s));
  CHECK_FALSE(cfg::is_ipv6_literal("::1\0x"s));
  CHECK(cfg::is_ipv4_literal("203.0.113.7"));
}
