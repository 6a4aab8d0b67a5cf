#include <doctest/doctest.h>

#include <initializer_list>
#include <string>
#include <string_view>

#include "ftpsgate/limits.h"
#include "tunnel/agent_protocol.h"

using namespace ftpsgate::tunnel;

namespace {

bool refused(std::string_view line) { return !parse_line(line).message.has_value(); }

void check_refused(std::initializer_list<std::string_view> lines) {
  for (const auto line : lines) CHECK_MESSAGE(refused(line), line);
}

ConnectRequest connect_of(std::string_view line) {
  const auto parsed = parse_line(line);
  REQUIRE_MESSAGE(parsed.message.has_value(), parsed.error);
  REQUIRE(parsed.message->kind == Message::Kind::kConnect);
  return parsed.message->connect;
}

}  // namespace

TEST_CASE("over-long lines are refused by the splitter and the parser") {
  const std::string long_name = std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(63, 'c') + "." +
                                std::string(61, 'd');  // 253 characters
  const std::string at_limit = "CONNECT " + long_name + ":65535 18446744073709551615 control\r\n";
  CHECK(at_limit.size() <= ftpsgate::limits::kAgentMaxRequestLine);
  CHECK(connect_of(at_limit).host.text == long_name);

  CHECK(refused("CONNECT " + long_name + "d:21 1 data\r\n"));  // 254 characters
  const std::string padded = "CONNECT 10.0.0.1:21 1 data" + std::string(300, ' ') + "\r\n";
  CHECK(parse_line(padded).error == "line too long");
  // Replies and idle lines are capped at 64 bytes.
  CHECK(refused("ERR " + std::string(70, 'x') + "\r\n"));

  CHECK(split_line(std::string(ftpsgate::limits::kAgentMaxRequestLine, 'A'), ftpsgate::limits::kAgentMaxRequestLine)
            .status == LineSplit::Status::kTooLong);
  CHECK(split_line(std::string(64, 'A') + "\r\n", 64).status == LineSplit::Status::kTooLong);
  CHECK(split_line(std::string(62, 'A') + "\r\n", 64).status == LineSplit::Status::kLine);
}

TEST_CASE("a bare LF, a missing CRLF or a lone CR is refused") {
  check_refused({
      "PING\n",
      "PING",
      "PING\r",
      "PI\rNG\r\n",
      "PING\r\n\r\n",
      "CONNECT 10.0.0.1:21 1 data\n",
  });
  CHECK(split_line("PING\n", 64).status == LineSplit::Status::kBareLf);
  CHECK(split_line("\n", 64).status == LineSplit::Status::kBareLf);
  CHECK(split_line("PING\r", 64).status == LineSplit::Status::kNeedMore);
  CHECK(split_line("", 64).status == LineSplit::Status::kNeedMore);
}

TEST_CASE("the splitter finds the first CRLF line and leaves the rest") {
  const auto split = split_line("OK\r\n220 ready\r\n", 64);
  CHECK(split.status == LineSplit::Status::kLine);
  CHECK(split.length == 4);
  // A bare LF in a later line is not this line's business.
  CHECK(split_line("PONG\r\nPING\n", 64).length == 6);
  // The line end must lie within the limit, even when more bytes follow.
  CHECK(split_line(std::string(70, 'A') + "\r\n", 64).status == LineSplit::Status::kTooLong);
}

TEST_CASE("odd spellings of an IPv4 address are refused") {
  check_refused({
      "CONNECT 127.1:21 1 control\r\n",
      "CONNECT 010.0.0.1:21 1 control\r\n",
      "CONNECT 127.000.000.001:21 1 control\r\n",
      "CONNECT 0x7f.0.0.1:21 1 control\r\n",
      "CONNECT 0x7f000001:21 1 control\r\n",
      "CONNECT 0X7F000001:21 1 control\r\n",
      "CONNECT 2130706433:21 1 control\r\n",
      "CONNECT 127.0.0.1.:21 1 control\r\n",
      "CONNECT 256.0.0.1:21 1 control\r\n",
      "CONNECT 0.0.0.0:21 1 control\r\n",  // the local host
      "CONNECT 0.1.2.3:21 1 control\r\n",
      "CONNECT 127.0.0.1 :21 1 control\r\n",
  });
  std::string error;
  CHECK_FALSE(parse_host("127.1", error).has_value());
  CHECK_FALSE(error.empty());
}

TEST_CASE("IPv6 hosts: brackets, no zone id, no IPv4-mapped or -compatible forms") {
  check_refused({
      "CONNECT [::ffff:10.0.0.1]:21 1 control\r\n",
      "CONNECT [::ffff:127.0.0.1]:21 1 control\r\n",
      "CONNECT [::FFFF:7f00:1]:21 1 control\r\n",
      "CONNECT [::127.0.0.1]:21 1 control\r\n",
      "CONNECT [::7f00:1]:21 1 control\r\n",
      "CONNECT [::]:21 1 control\r\n",
      "CONNECT [fe80::1%eth0]:21 1 control\r\n",
      "CONNECT [fe80::1%25eth0]:21 1 control\r\n",
      "CONNECT ::1:21 1 control\r\n",
      "CONNECT [::1:21 1 control\r\n",
      "CONNECT []:21 1 control\r\n",
      "CONNECT [10.0.0.1]:21 1 control\r\n",
  });

  auto request = connect_of("CONNECT [::1]:21 0 health\r\n");
  CHECK(request.host == Host{Host::Kind::kIpv6, "::1"});
  // Any inet_pton spelling, kept in canonical form.
  request = connect_of("CONNECT [FD00:0:0::0A]:2121 7 data\r\n");
  CHECK(request.host.text == "fd00::a");
  CHECK(build_connect(request) == "CONNECT [fd00::a]:2121 7 data\r\n");
}

TEST_CASE("DNS names: LDH labels of 1-63, at most 253 in all, the last label not numeric") {
  CHECK(connect_of("CONNECT ftp.corp.example:21 1 control\r\n").host == Host{Host::Kind::kName, "ftp.corp.example"});
  CHECK(connect_of("CONNECT FTP-1.Corp.example:21 1 control\r\n").host.text == "FTP-1.Corp.example");
  CHECK(connect_of("CONNECT localhost:21 1 control\r\n").host.kind == Host::Kind::kName);
  CHECK(connect_of("CONNECT 1.2.3.4a:21 1 control\r\n").host.kind == Host::Kind::kName);
  CHECK(connect_of("CONNECT " + std::string(63, 'a') + ":21 1 data\r\n").host.kind == Host::Kind::kName);

  CHECK(refused("CONNECT " + std::string(64, 'a') + ":21 1 data\r\n"));
  check_refused({
      "CONNECT ftp..example:21 1 data\r\n",
      "CONNECT .example:21 1 data\r\n",
      "CONNECT ftp.example.:21 1 data\r\n",
      "CONNECT -ftp.example:21 1 data\r\n",
      "CONNECT ftp-.example:21 1 data\r\n",
      "CONNECT ftp_1.example:21 1 data\r\n",
      "CONNECT ftp.example.123:21 1 data\r\n",
      "CONNECT ftp.example.0x1f:21 1 data\r\n",
      "CONNECT :21 1 data\r\n",
      "CONNECT ftp\x01.example:21 1 data\r\n",
  });
  CHECK(refused(std::string("CONNECT ftp\0.example:21 1 data\r\n", 33)));
  CHECK(refused("CONNECT f\xc3\xbc.example:21 1 data\r\n"));
}

TEST_CASE("ports are 1-65535 without leading zeros") {
  check_refused({
      "CONNECT 10.0.0.1:0 1 data\r\n",
      "CONNECT 10.0.0.1:65536 1 data\r\n",
      "CONNECT 10.0.0.1:99999 1 data\r\n",
      "CONNECT 10.0.0.1:00021 1 data\r\n",
      "CONNECT 10.0.0.1:021 1 data\r\n",
      "CONNECT 10.0.0.1:+21 1 data\r\n",
      "CONNECT 10.0.0.1:-21 1 data\r\n",
      "CONNECT 10.0.0.1: 1 data\r\n",
      "CONNECT 10.0.0.1 1 data\r\n",
      "CONNECT 10.0.0.1:21:21 1 data\r\n",
  });
  CHECK(connect_of("CONNECT 10.0.0.1:1 1 data\r\n").port == 1);
  CHECK(connect_of("CONNECT 10.0.0.1:65535 1 data\r\n").port == 65535);
  CHECK_FALSE(parse_port("0").has_value());
  CHECK(parse_port("21") == 21);
}

TEST_CASE("sessions are 1-20 digits that fit 64 bits, without leading zeros") {
  CHECK(connect_of("CONNECT 10.0.0.1:21 0 health\r\n").session == 0);
  CHECK(connect_of("CONNECT 10.0.0.1:21 18446744073709551615 data\r\n").session == 18446744073709551615ULL);
  check_refused({
      "CONNECT 10.0.0.1:21 18446744073709551616 data\r\n",
      "CONNECT 10.0.0.1:21 100000000000000000000 data\r\n",  // 21 digits
      "CONNECT 10.0.0.1:21 000000000000000000001 data\r\n",
      "CONNECT 10.0.0.1:21 08812 data\r\n",
      "CONNECT 10.0.0.1:21 -1 data\r\n",
      "CONNECT 10.0.0.1:21 0x10 data\r\n",
  });
}

TEST_CASE("verbs are upper case, separated by single spaces, with nothing extra") {
  check_refused({
      "connect 10.0.0.1:21 1 data\r\n",
      "Connect 10.0.0.1:21 1 data\r\n",
      "CONNECT  10.0.0.1:21 1 data\r\n",
      "CONNECT 10.0.0.1:21  1 data\r\n",
      "CONNECT 10.0.0.1:21 1  data\r\n",
      "CONNECT 10.0.0.1:21 1 data \r\n",
      " CONNECT 10.0.0.1:21 1 data\r\n",
      "CONNECT\t10.0.0.1:21 1 data\r\n",
      "CONNECT 10.0.0.1:21 1\r\n",
      "CONNECT 10.0.0.1:21 1 data extra\r\n",
      "CONNECT 10.0.0.1:21 1 DATA\r\n",
      "CONNECT 10.0.0.1:21 1 listen\r\n",
      "CONNECT\r\n",
      "ping\r\n",
      "PING \r\n",
      "PONG x\r\n",
      "ok\r\n",
      "OK \r\n",
      "\r\n",
      "LISTEN 10.0.0.1:21\r\n",
  });
}

TEST_CASE("ERR carries one reason from the fixed set, no free text") {
  check_refused({
      "ERR\r\n",
      "ERR \r\n",
      "ERR not allowed\r\n",
      "ERR not_allowed \r\n",
      "ERR NOT_ALLOWED\r\n",
      "ERR connection refused by 10.0.0.1\r\n",
      "err busy\r\n",
  });
  const char* reasons[] = {"not_allowed", "connect_failed", "connect_timeout", "resolve_failed", "bad_request",
                           "busy",        "shutting_down",  "unknown_agent",   "too_many_links"};
  for (const char* reason : reasons) {
    const auto parsed = parse_line("ERR " + std::string(reason) + "\r\n");
    REQUIRE(parsed.message.has_value());
    CHECK(parsed.message->kind == Message::Kind::kErr);
    CHECK(reason_name(parsed.message->reason) == reason);
    CHECK(build_err(parsed.message->reason) == "ERR " + std::string(reason) + "\r\n");
  }
}

TEST_CASE("a CONNECT request is read field by field") {
  const auto request = connect_of("CONNECT 127.0.0.1:40012 8812 data\r\n");
  CHECK(request.host == Host{Host::Kind::kIpv4, "127.0.0.1"});
  CHECK(request.port == 40012);
  CHECK(request.session == 8812);
  CHECK(request.purpose == Purpose::kData);
  CHECK(connect_of("CONNECT 10.0.0.1:21 5 control\r\n").purpose == Purpose::kControl);
  CHECK(connect_of("CONNECT 10.0.0.1:21 0 health\r\n").purpose == Purpose::kHealth);
}

TEST_CASE("OK, PING and PONG are exact lines") {
  CHECK(parse_line(ok_line()).message->kind == Message::Kind::kOk);
  CHECK(parse_line(ping_line()).message->kind == Message::Kind::kPing);
  CHECK(parse_line(pong_line()).message->kind == Message::Kind::kPong);
  CHECK(ok_line() == "OK\r\n");
  CHECK(ping_line() == "PING\r\n");
  CHECK(pong_line() == "PONG\r\n");
}

TEST_CASE("every built line parses back to the same message") {
  const char* lines[] = {
      "CONNECT 127.0.0.1:21 0 health\r\n",
      "CONNECT 10.20.0.7:40049 18446744073709551615 data\r\n",
      "CONNECT [::1]:21 1 control\r\n",
      "CONNECT [2001:db8::7]:990 42 data\r\n",
      "CONNECT ftp.corp.example:21 9 control\r\n",
      "OK\r\n",
      "PING\r\n",
      "PONG\r\n",
      "ERR too_many_links\r\n",
  };
  for (const char* line : lines) {
    const auto parsed = parse_line(line);
    REQUIRE_MESSAGE(parsed.message.has_value(), line);
    CHECK(parsed.error.empty());
    const std::string built = build_line(*parsed.message);
    CHECK(built == line);
    CHECK(parse_line(built).message == parsed.message);
    CHECK(split_line(built, ftpsgate::limits::kAgentMaxRequestLine).length == built.size());
  }
}

TEST_CASE("the host parser names what it refuses") {
  std::string error;
  CHECK_FALSE(parse_host("[::ffff:1.2.3.4]", error).has_value());
  CHECK(error.find("IPv4-mapped") != std::string::npos);
  CHECK_FALSE(parse_host("[fe80::1%eth0]", error).has_value());
  CHECK(error.find("zone") != std::string::npos);
  CHECK_FALSE(parse_host("0.0.0.0", error).has_value());
  CHECK(error.find("unspecified") != std::string::npos);
  CHECK(parse_host("10.0.0.1", error).has_value());
  CHECK(error.empty());
  CHECK(parse_line("CONNECT 10.0.0.1:0 1 data\r\n").error.find("port") != std::string::npos);
}
