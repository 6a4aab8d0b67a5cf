#include <doctest/doctest.h>

#include <string>

#include "ftp/address_codec.h"

using namespace ftpsgate::ftp;

TEST_CASE("PASV replies without six valid numbers are rejected") {
  CHECK_FALSE(parse_pasv_reply("").has_value());
  CHECK_FALSE(parse_pasv_reply("227").has_value());
  CHECK_FALSE(parse_pasv_reply("227 Entering Passive Mode").has_value());
  CHECK_FALSE(parse_pasv_reply("227 Entering Passive Mode (127,0,0,1,82)").has_value());       // 5 fields
  CHECK_FALSE(parse_pasv_reply("227 Entering Passive Mode (127,0,0,1,82,10,5)").has_value());  // 7 fields
  CHECK_FALSE(parse_pasv_reply("227 Entering Passive Mode (256,0,0,1,82,10)").has_value());
  CHECK_FALSE(parse_pasv_reply("227 Entering Passive Mode (127,0,0,1,82,256)").has_value());
  CHECK_FALSE(parse_pasv_reply("227 Entering Passive Mode (127,0,0,1,0,0)").has_value());  // port 0
  CHECK_FALSE(parse_pasv_reply("227 Entering Passive Mode (127, 0,0,1,82,10)").has_value());
  CHECK_FALSE(parse_pasv_reply("227 Entering Passive Mode (127,0,0,1,8 2,10)").has_value());
  CHECK_FALSE(parse_pasv_reply("227 Entering Passive Mode (-127,0,0,1,82,10)").has_value());
  CHECK_FALSE(parse_pasv_reply("227 Entering Passive Mode (+127,0,0,1,82,10)").has_value());
  CHECK_FALSE(parse_pasv_reply("227 Entering Passive Mode (127,0,0,1,,82,10)").has_value());
  CHECK_FALSE(parse_pasv_reply("227 Entering Passive Mode (0127,0,0,1,82,10)").has_value());
  CHECK_FALSE(parse_pasv_reply("227 Entering Passive Mode (99999999999,0,0,1,82,10)").has_value());
}

TEST_CASE("PASV replies are parsed wherever the numbers are") {
  auto hp = parse_pasv_reply("227 Entering Passive Mode (127,0,0,1,82,10).");
  REQUIRE(hp.has_value());
  CHECK(hp->host == "127.0.0.1");
  CHECK(hp->port == 82 * 256 + 10);

  hp = parse_pasv_reply("227 =192,168,1,2,4,1");
  REQUIRE(hp.has_value());
  CHECK(hp->host == "192.168.1.2");
  CHECK(hp->port == 1025);

  hp = parse_pasv_reply("=127,0,0,1,82,10");  // text without the code
  REQUIRE(hp.has_value());
  CHECK(hp->port == 21002);

  hp = parse_pasv_reply("227 Entering Passive Mode 10,0,0,5,117,49");
  REQUIRE(hp.has_value());
  CHECK(hp->host == "10.0.0.5");
  CHECK(hp->port == 30001);

  hp = parse_pasv_reply("227 Mode 2 ok (010,000,000,005,117,049)");  // leading zeros, stray digit
  REQUIRE(hp.has_value());
  CHECK(hp->host == "10.0.0.5");
  CHECK(hp->port == 30001);
}

TEST_CASE("a backend's passive reply gives its port by code: 227 as PASV, 229 as EPSV, others none") {
  CHECK(parse_passive_reply_port(227, "227 Entering Passive Mode (10,0,0,5,117,49)") == 30001);
  CHECK(parse_passive_reply_port(229, "229 Entering Extended Passive Mode (|||30001|)") == 30001);
  CHECK_FALSE(parse_passive_reply_port(229, "227 Entering Passive Mode (10,0,0,5,117,49)").has_value());
  CHECK_FALSE(parse_passive_reply_port(227, "229 Entering Extended Passive Mode (|||30001|)").has_value());
  CHECK_FALSE(parse_passive_reply_port(200, "200 Entering Passive Mode (10,0,0,5,117,49)").has_value());
  CHECK_FALSE(parse_passive_reply_port(227, "227 Entering Passive Mode (10,0,0,5,0,0)").has_value());
}

TEST_CASE("EPSV replies need four identical delimiters and a port 1..65535") {
  CHECK_FALSE(parse_epsv_reply("").has_value());
  CHECK_FALSE(parse_epsv_reply("229 Entering Extended Passive Mode").has_value());
  CHECK_FALSE(parse_epsv_reply("229 Entering Extended Passive Mode (|||30001|").has_value());
  CHECK_FALSE(parse_epsv_reply("229 Entering Extended Passive Mode (|||0|)").has_value());
  CHECK_FALSE(parse_epsv_reply("229 Entering Extended Passive Mode (|||65536|)").has_value());
  CHECK_FALSE(parse_epsv_reply("229 Entering Extended Passive Mode (|||99999999999|)").has_value());
  CHECK_FALSE(parse_epsv_reply("229 Entering Extended Passive Mode (|||-1|)").has_value());
  CHECK_FALSE(parse_epsv_reply("229 Entering Extended Passive Mode (||| 30001|)").has_value());
  CHECK_FALSE(parse_epsv_reply("229 Entering Extended Passive Mode (|||30001!)").has_value());
  CHECK_FALSE(parse_epsv_reply("229 Entering Extended Passive Mode (||!30001|)").has_value());
  CHECK_FALSE(parse_epsv_reply("229 Entering Extended Passive Mode (|1|127.0.0.1|30001|)").has_value());
  CHECK_FALSE(parse_epsv_reply("229 Entering Extended Passive Mode (|||)").has_value());
  CHECK_FALSE(parse_epsv_reply("229 Entering Extended Passive Mode (   30001 )").has_value());
}

TEST_CASE("EPSV replies are parsed with any printable delimiter") {
  auto port = parse_epsv_reply("229 Entering Extended Passive Mode (|||30001|)");
  REQUIRE(port.has_value());
  CHECK(*port == 30001);
  port = parse_epsv_reply("229 Entering Extended Passive Mode (!!!1!)");
  REQUIRE(port.has_value());
  CHECK(*port == 1);
  port = parse_epsv_reply("229 ok (~~~65535~).");
  REQUIRE(port.has_value());
  CHECK(*port == 65535);
}

TEST_CASE("PASV and EPSV reply builders produce the documented lines") {
  CHECK(build_pasv_reply("127.0.0.77", 30001) == "227 Entering Passive Mode (127,0,0,77,117,49)");
  CHECK(build_pasv_reply("203.0.113.9", 65535) == "227 Entering Passive Mode (203,0,113,9,255,255)");
  CHECK(build_epsv_reply(30001) == "229 Entering Extended Passive Mode (|||30001|)");
  // Round trips.
  auto hp = parse_pasv_reply(build_pasv_reply("10.1.2.3", 1024));
  REQUIRE(hp.has_value());
  CHECK(hp->host == "10.1.2.3");
  CHECK(hp->port == 1024);
  auto port = parse_epsv_reply(build_epsv_reply(2121));
  REQUIRE(port.has_value());
  CHECK(*port == 2121);
}

TEST_CASE("PORT arguments must be exactly six numbers") {
  CHECK_FALSE(parse_port_argument("").has_value());
  CHECK_FALSE(parse_port_argument("127,0,0,1,82").has_value());
  CHECK_FALSE(parse_port_argument("127,0,0,1,82,10,1").has_value());
  CHECK_FALSE(parse_port_argument("127,0,0,1,82,10,").has_value());
  CHECK_FALSE(parse_port_argument(",127,0,0,1,82,10").has_value());
  CHECK_FALSE(parse_port_argument("127,0,0,1,0,0").has_value());
  CHECK_FALSE(parse_port_argument("127,0,0,256,82,10").has_value());
  CHECK_FALSE(parse_port_argument(" 127,0,0,1,82,10").has_value());
  CHECK_FALSE(parse_port_argument("127,0,0,1,82,10 ").has_value());
  CHECK_FALSE(parse_port_argument("127,0,0,1, 82,10").has_value());
  CHECK_FALSE(parse_port_argument("127,0,0,+1,82,10").has_value());
  CHECK_FALSE(parse_port_argument("127,0,0,-1,82,10").has_value());
  CHECK_FALSE(parse_port_argument("(127,0,0,1,82,10)").has_value());
  CHECK_FALSE(parse_port_argument("127.0.0.1,82,10").has_value());
  CHECK_FALSE(parse_port_argument("0x7f,0,0,1,82,10").has_value());
}

TEST_CASE("PORT arguments parse and build") {
  auto hp = parse_port_argument("192,168,0,10,4,0");
  REQUIRE(hp.has_value());
  CHECK(hp->host == "192.168.0.10");
  CHECK(hp->port == 1024);
  CHECK(build_port_argument("192.168.0.10", 1024) == "192,168,0,10,4,0");
  CHECK(build_port_argument("127.0.0.77", 30001) == "127,0,0,77,117,49");
}

TEST_CASE("EPRT arguments with a wrong family, bad address or port are rejected") {
  CHECK_FALSE(parse_eprt_argument("").has_value());
  CHECK_FALSE(parse_eprt_argument("|1|132.235.1.2|6275").has_value());      // no final delimiter
  CHECK_FALSE(parse_eprt_argument("|1|132.235.1.2|6275|x").has_value());    // trailing junk
  CHECK_FALSE(parse_eprt_argument("|1|132.235.1.2|6275|9|").has_value());   // extra field
  CHECK_FALSE(parse_eprt_argument("|1|::1|6275|").has_value());             // family mismatch
  CHECK_FALSE(parse_eprt_argument("|2|132.235.1.2|6275|").has_value());     // family mismatch
  CHECK_FALSE(parse_eprt_argument("|3|132.235.1.2|6275|").has_value());     // unknown family
  CHECK_FALSE(parse_eprt_argument("||132.235.1.2|6275|").has_value());
  CHECK_FALSE(parse_eprt_argument("|1|132.235.1|6275|").has_value());
  CHECK_FALSE(parse_eprt_argument("|1|132.235.1.256|6275|").has_value());
  CHECK_FALSE(parse_eprt_argument("|1|host.example|6275|").has_value());
  CHECK_FALSE(parse_eprt_argument("|1| 132.235.1.2|6275|").has_value());
  CHECK_FALSE(parse_eprt_argument("|1|132.235.1.2|0|").has_value());
  CHECK_FALSE(parse_eprt_argument("|1|132.235.1.2|65536|").has_value());
  CHECK_FALSE(parse_eprt_argument("|1|132.235.1.2|+80|").has_value());
  CHECK_FALSE(parse_eprt_argument("|1|132.235.1.2| 80|").has_value());
  CHECK_FALSE(parse_eprt_argument("|1|132.235.1.2|!").has_value());
  CHECK_FALSE(parse_eprt_argument("|1|132.235.1.2!6275!").has_value());     // mixed delimiters
  CHECK_FALSE(parse_eprt_argument("|2|fe80::1%eth0|6275|").has_value());    // zone ids refused
  CHECK_FALSE(parse_eprt_argument(std::string("|1|1.2.3.4\0x|80|", 16)).has_value());
}

TEST_CASE("EPRT arguments parse for IPv4 and IPv6, and build") {
  auto hp = parse_eprt_argument("|1|132.235.1.2|6275|");
  REQUIRE(hp.has_value());
  CHECK(hp->host == "132.235.1.2");
  CHECK(hp->port == 6275);

  hp = parse_eprt_argument("|2|1080::8:800:200C:417A|5282|");
  REQUIRE(hp.has_value());
  CHECK(hp->host == "1080::8:800:200c:417a");  // canonical form
  CHECK(hp->port == 5282);

  hp = parse_eprt_argument("!2!::1!21!");
  REQUIRE(hp.has_value());
  CHECK(hp->host == "::1");

  CHECK(build_eprt_argument("132.235.1.2", 6275) == "|1|132.235.1.2|6275|");
  CHECK(build_eprt_argument("::1", 21) == "|2|::1|21|");
}

TEST_CASE("EPSV arguments") {
  using Kind = EpsvArgument::Kind;
  CHECK(parse_epsv_argument("").kind == Kind::kAny);
  CHECK(parse_epsv_argument("1").kind == Kind::kIpv4);
  CHECK(parse_epsv_argument("2").kind == Kind::kIpv6);
  CHECK(parse_epsv_argument("ALL").kind == Kind::kAll);
  CHECK(parse_epsv_argument("all").kind == Kind::kAll);
  CHECK(parse_epsv_argument("3").kind == Kind::kUnsupported);
  CHECK(parse_epsv_argument("ALLX").kind == Kind::kUnsupported);
  CHECK(parse_epsv_argument(" 1").kind == Kind::kUnsupported);
  CHECK(parse_epsv_argument("01").kind == Kind::kUnsupported);
}

TEST_CASE("is_ipv4_literal accepts dotted quads only") {
  CHECK(is_ipv4_literal("127.0.0.1"));
  CHECK(is_ipv4_literal("255.255.255.255"));
  CHECK_FALSE(is_ipv4_literal(""));
  CHECK_FALSE(is_ipv4_literal("::1"));
  CHECK_FALSE(is_ipv4_literal("127.1"));
  CHECK_FALSE(is_ipv4_literal("256.0.0.1"));
  CHECK_FALSE(is_ipv4_literal("localhost"));
  CHECK_FALSE(is_ipv4_literal(" 127.0.0.1"));
  CHECK_FALSE(is_ipv4_literal(std::string("127.0.0.1\0", 10)));
}
