#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "policy/client_class.h"

using ftpsgate::ClassConfig;
using ftpsgate::TlsRequired;
using ftpsgate::UserOverride;
using namespace ftpsgate::policy;

namespace {

IpAddress ip(std::string_view text) {
  auto parsed = IpAddress::parse(text);
  REQUIRE_MESSAGE(parsed.has_value(), "test address does not parse: " << std::string(text));
  return *parsed;
}

bool in(std::string_view cidr, std::string_view address) {
  auto parsed = Cidr::parse(cidr);
  REQUIRE_MESSAGE(parsed.has_value(), "test CIDR does not parse: " << std::string(cidr));
  return parsed->contains(ip(address));
}

ClassConfig make_class(std::string name, std::vector<std::string> from, TlsRequired required) {
  ClassConfig cls;
  cls.name = std::move(name);
  cls.from = std::move(from);
  cls.tls_required = required;
  return cls;
}

}  // namespace

TEST_CASE("addresses that are not bare IP literals are rejected") {
  CHECK_FALSE(IpAddress::parse("").has_value());
  CHECK_FALSE(IpAddress::parse("localhost").has_value());
  CHECK_FALSE(IpAddress::parse("10.0.0").has_value());
  CHECK_FALSE(IpAddress::parse("10.0.0.256").has_value());
  CHECK_FALSE(IpAddress::parse("10.0.0.1:21").has_value());
  CHECK_FALSE(IpAddress::parse("[::1]").has_value());
  CHECK_FALSE(IpAddress::parse(" 10.0.0.1").has_value());
  CHECK_FALSE(IpAddress::parse("10.0.0.1/8").has_value());
  CHECK_FALSE(IpAddress::parse("fe80::1%eth0").has_value());
  CHECK_FALSE(IpAddress::parse(std::string("10.0.0.1\0junk", 13)).has_value());
  CHECK_FALSE(IpAddress::parse(std::string(200, '1')).has_value());
}

TEST_CASE("CIDRs with bad prefixes or addresses are rejected") {
  CHECK_FALSE(Cidr::parse("").has_value());
  CHECK_FALSE(Cidr::parse("/8").has_value());
  CHECK_FALSE(Cidr::parse("10.0.0.0/").has_value());
  CHECK_FALSE(Cidr::parse("10.0.0.0/33").has_value());
  CHECK_FALSE(Cidr::parse("10.0.0.0/-1").has_value());
  CHECK_FALSE(Cidr::parse("10.0.0.0/+8").has_value());
  CHECK_FALSE(Cidr::parse("10.0.0.0/08").has_value());
  CHECK_FALSE(Cidr::parse("10.0.0.0/8 ").has_value());
  CHECK_FALSE(Cidr::parse("10.0.0.0/8/8").has_value());
  CHECK_FALSE(Cidr::parse("10.0.0.0/1000").has_value());
  CHECK_FALSE(Cidr::parse("::1/129").has_value());
  CHECK_FALSE(Cidr::parse("example.com/8").has_value());
}

TEST_CASE("IPv4 CIDRs match by prefix, host bits in the rule are masked") {
  CHECK(in("10.0.0.0/8", "10.255.1.2"));
  CHECK_FALSE(in("10.0.0.0/8", "11.0.0.1"));
  CHECK(in("10.1.2.3/8", "10.9.9.9"));  // host bits allowed and ignored
  CHECK(in("192.168.1.128/25", "192.168.1.200"));
  CHECK_FALSE(in("192.168.1.128/25", "192.168.1.127"));
  CHECK(in("0.0.0.0/0", "203.0.113.7"));
  CHECK(in("127.0.0.1", "127.0.0.1"));  // no prefix = /32
  CHECK_FALSE(in("127.0.0.1", "127.0.0.2"));
  CHECK(in("10.0.0.1/32", "10.0.0.1"));
  auto masked = Cidr::parse("10.1.2.3/8");
  REQUIRE(masked.has_value());
  CHECK(masked->network.to_string() == "10.0.0.0");
  CHECK(masked->prefix == 8);
}

TEST_CASE("IPv6 CIDRs match by prefix") {
  CHECK(in("::1/128", "::1"));
  CHECK_FALSE(in("::1/128", "::2"));
  CHECK(in("2001:db8::/32", "2001:db8:ffff::1"));
  CHECK_FALSE(in("2001:db8::/32", "2001:db9::1"));
  CHECK(in("2001:db8::/33", "2001:db8:7fff::1"));
  CHECK_FALSE(in("2001:db8::/33", "2001:db8:8000::1"));
  CHECK(in("::/0", "2001:db8::1"));
}

TEST_CASE("an IPv4 CIDR never matches an IPv6 address except an IPv4-mapped one") {
  CHECK_FALSE(in("0.0.0.0/0", "::1"));
  CHECK_FALSE(in("0.0.0.0/0", "2001:db8::1"));
  CHECK_FALSE(in("10.0.0.0/8", "a00::1"));       // same leading bytes, other family
  CHECK_FALSE(in("::/0", "10.0.0.1"));           // and the reverse
  CHECK(in("10.0.0.0/8", "::ffff:10.1.2.3"));    // dual-stack socket view of an IPv4 client
  CHECK_FALSE(in("10.0.0.0/8", "::ffff:11.1.2.3"));
  CHECK(in("::ffff:0:0/96", "::ffff:10.1.2.3"));  // IPv6 rule written for the mapped range
}

TEST_CASE("IPv4-mapped addresses unmap to IPv4, others stay as they are") {
  const IpAddress mapped = ip("::ffff:192.0.2.1");
  CHECK(mapped.v6);
  CHECK(mapped.unmapped() == ip("192.0.2.1"));
  CHECK_FALSE(mapped.unmapped().v6);
  CHECK(ip("::1").unmapped() == ip("::1"));
  CHECK(ip("::192.0.2.1").unmapped().v6);  // deprecated IPv4-compatible: not mapped
  CHECK(ip("192.0.2.1").unmapped() == ip("192.0.2.1"));
}

TEST_CASE("addresses print in canonical form") {
  CHECK(ip("10.0.0.1").to_string() == "10.0.0.1");
  CHECK(ip("2001:DB8:0:0::1").to_string() == "2001:db8::1");
  CHECK(ip("::ffff:10.0.0.1").unmapped().to_string() == "10.0.0.1");
}

TEST_CASE("the first class whose from contains the client wins, empty from matches all") {
  const std::vector<ClassConfig> classes = {
      make_class("internal", {"10.0.0.0/8", "::1/128"}, TlsRequired::kOff),
      make_class("lab", {"10.1.0.0/16"}, TlsRequired::kCtrl),  // shadowed by internal
      make_class("partners", {"not a cidr", "203.0.113.0/24"}, TlsRequired::kAuth),
      make_class("default", {}, TlsRequired::kOn),
  };
  const ClassConfig* cls = select_class(classes, ip("10.1.2.3"));
  REQUIRE(cls != nullptr);
  CHECK(cls->name == "internal");
  cls = select_class(classes, ip("::1"));
  REQUIRE(cls != nullptr);
  CHECK(cls->name == "internal");
  cls = select_class(classes, ip("::ffff:10.9.9.9"));
  REQUIRE(cls != nullptr);
  CHECK(cls->name == "internal");
  cls = select_class(classes, ip("203.0.113.50"));
  REQUIRE(cls != nullptr);
  CHECK(cls->name == "partners");
  cls = select_class(classes, ip("198.51.100.1"));
  REQUIRE(cls != nullptr);
  CHECK(cls->name == "default");
}

TEST_CASE("no class is selected when none matches") {
  CHECK(select_class({}, ip("10.0.0.1")) == nullptr);
  const std::vector<ClassConfig> classes = {make_class("internal", {"10.0.0.0/8"}, TlsRequired::kOff)};
  CHECK(select_class(classes, ip("192.0.2.1")) == nullptr);
  CHECK(select_class(classes, ip("::1")) == nullptr);
}

TEST_CASE("per-user tls_required applies only with allow_per_user") {
  ClassConfig cls = make_class("default", {}, TlsRequired::kCtrl);
  cls.users["anonymous"] = UserOverride{TlsRequired::kOff};
  cls.users["nooverride"] = UserOverride{};

  CHECK(effective_tls_required(cls, "anonymous") == TlsRequired::kCtrl);  // allow_per_user false
  cls.allow_per_user = true;
  CHECK(effective_tls_required(cls, "anonymous") == TlsRequired::kOff);
  CHECK(effective_tls_required(cls, "Anonymous") == TlsRequired::kCtrl);  // exact names only
  CHECK(effective_tls_required(cls, "bob") == TlsRequired::kCtrl);
  CHECK(effective_tls_required(cls, "nooverride") == TlsRequired::kCtrl);
  CHECK(effective_tls_required(cls, "") == TlsRequired::kCtrl);
}

TEST_CASE("any_contains: trusted balancer lists") {
  const std::vector<std::string> balancers{"127.0.0.2/32", "10.0.0.0/8", "fd00::/8"};
  CHECK(ftpsgate::policy::any_contains(balancers, std::string_view("127.0.0.2")));
  CHECK_FALSE(ftpsgate::policy::any_contains(balancers, std::string_view("127.0.0.1")));
  CHECK(ftpsgate::policy::any_contains(balancers, std::string_view("10.200.1.1")));
  CHECK(ftpsgate::policy::any_contains(balancers, std::string_view("fd12::1")));
  CHECK_FALSE(ftpsgate::policy::any_contains(balancers, std::string_view("::1")));
  CHECK_FALSE(ftpsgate::policy::any_contains(balancers, std::string_view("not an address")));
  CHECK_FALSE(ftpsgate::policy::any_contains({}, std::string_view("127.0.0.2")));
}
