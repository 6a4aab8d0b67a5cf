#include <doctest/doctest.h>

#include <string>

#include "proxy/proxy_header.h"

using ftpsgate::proxy::parse_proxy_header;
using ftpsgate::proxy::ParseResult;
using ftpsgate::proxy::ParseStatus;

namespace {
std::string v2(unsigned char ver_cmd, unsigned char family, const std::string& body) {
  std::string out("\r\n\r\n\0\r\nQUIT\n", 12);
  out.push_back(static_cast<char>(ver_cmd));
  out.push_back(static_cast<char>(family));
  out.push_back(static_cast<char>(body.size() >> 8));
  out.push_back(static_cast<char>(body.size() & 0xFF));
  return out + body;
}
std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (int v : values) out.push_back(static_cast<char>(v));
  return out;
}
// A header of the given version and length for a client at 192.0.2.10:40000 reaching 127.0.0.1:2121.
void check_client_header(const ParseResult& r, int version, std::size_t length) {
  REQUIRE(r.status == ParseStatus::kDone);
  CHECK(r.header.version == version);
  CHECK(r.header.has_addresses);
  CHECK(r.header.source_ip == "192.0.2.10");
  CHECK(r.header.source_port == 40000);
  CHECK(r.header.destination_ip == "127.0.0.1");
  CHECK(r.header.destination_port == 2121);
  CHECK(r.header.length == length);
}
}  // namespace

TEST_CASE("PROXY v1 TCP4 gives the client's address and the header length") {
  const std::string line = "PROXY TCP4 192.0.2.10 127.0.0.1 40000 2121\r\n";
  check_client_header(parse_proxy_header(line + "AUTH TLS\r\n"), 1, line.size());
}

TEST_CASE("PROXY v1 TCP6 canonicalises the addresses") {
  const auto r = parse_proxy_header("PROXY TCP6 2001:DB8:0:0::1 ::1 1 65535\r\n");
  REQUIRE(r.status == ParseStatus::kDone);
  CHECK(r.header.source_ip == "2001:db8::1");
  CHECK(r.header.destination_port == 65535);
}

TEST_CASE("PROXY v1 UNKNOWN keeps the real addresses") {
  const auto r = parse_proxy_header("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n");
  REQUIRE(r.status == ParseStatus::kDone);
  CHECK_FALSE(r.header.has_addresses);
}

TEST_CASE("a PROXY v1 header arriving in pieces needs more until the CRLF") {
  const std::string line = "PROXY TCP4 10.0.0.1 10.0.0.2 1234 21\r\n";
  for (std::size_t n = 0; n < line.size(); ++n) {
    CAPTURE(n);
    CHECK(parse_proxy_header(line.substr(0, n)).status == ParseStatus::kNeedMore);
  }
  CHECK(parse_proxy_header(line).status == ParseStatus::kDone);
}

TEST_CASE("malformed PROXY v1 headers are refused") {
  for (const char* bad : {"PROXY TCP4 10.0.0.1 10.0.0.2 1234\r\n", "PROXY TCP4 10.0.0.256 10.0.0.2 1 2\r\n",
                          "PROXY TCP4 ::1 10.0.0.2 1 2\r\n", "PROXY TCP4 10.0.0.1 10.0.0.2 65536 2\r\n",
                          "PROXY TCP4 10.0.0.1 10.0.0.2 01 2\r\n", "PROXY TCP4 10.0.0.1 10.0.0.2 -1 2\r\n",
                          "PROXY UDP4 10.0.0.1 10.0.0.2 1 2\r\n", "PROXY TCP4  10.0.0.1 10.0.0.2 1 2\r\n",
                          "PROXY TCP4 10.0.0.1 10.0.0.2 1 2\n", "USER anonymous\r\n", "GET / HTTP/1.0\r\n",
                          "\x16\x03\x01\x02\x00\x01"}) {
    CAPTURE(bad);
    CHECK(parse_proxy_header(bad).status == ParseStatus::kInvalid);
  }
  CHECK(parse_proxy_header("PROXY TCP4 " + std::string(200, '1')).status == ParseStatus::kInvalid);
}

TEST_CASE("PROXY v2 TCP over IPv4 with TLVs") {
  const std::string body = bytes({192, 0, 2, 10, 127, 0, 0, 1, 0x9C, 0x40, 0x08, 0x49}) + bytes({0x04, 0, 2, 'h', 'i'});
  const std::string header = v2(0x21, 0x11, body);
  check_client_header(parse_proxy_header(header + "\x16\x03\x01"), 2, header.size());
  for (std::size_t n = 0; n < header.size(); ++n) {
    CAPTURE(n);
    CHECK(parse_proxy_header(header.substr(0, n)).status == ParseStatus::kNeedMore);
  }
}

TEST_CASE("PROXY v2 TCP over IPv6") {
  std::string body(36, '\0');
  body[15] = 1;                                    // ::1
  body[16] = 0x20, body[17] = 0x01, body[31] = 7;  // 2001::7
  body[32] = 0, body[33] = 80, body[34] = 0, body[35] = 21;
  const auto r = parse_proxy_header(v2(0x21, 0x21, body));
  REQUIRE(r.status == ParseStatus::kDone);
  CHECK(r.header.source_ip == "::1");
  CHECK(r.header.destination_ip == "2001::7");
  CHECK(r.header.source_port == 80);
}

TEST_CASE("PROXY v2 LOCAL and UNSPEC keep the real addresses") {
  auto r = parse_proxy_header(v2(0x20, 0x00, ""));
  REQUIRE(r.status == ParseStatus::kDone);
  CHECK_FALSE(r.header.has_addresses);
  CHECK(r.header.length == 16);
  r = parse_proxy_header(v2(0x21, 0x00, "ab"));
  REQUIRE(r.status == ParseStatus::kDone);
  CHECK_FALSE(r.header.has_addresses);
  CHECK(r.header.length == 18);
}

TEST_CASE("malformed PROXY v2 headers are refused") {
  const std::string ipv4 = bytes({10, 0, 0, 1, 10, 0, 0, 2, 0, 1, 0, 2});
  CHECK(parse_proxy_header(v2(0x11, 0x11, ipv4)).status == ParseStatus::kInvalid);     // version 1 in v2 form
  CHECK(parse_proxy_header(v2(0x22, 0x11, ipv4)).status == ParseStatus::kInvalid);     // command 2
  CHECK(parse_proxy_header(v2(0x21, 0x12, ipv4)).status == ParseStatus::kInvalid);     // DGRAM
  CHECK(parse_proxy_header(v2(0x21, 0x11, "short")).status == ParseStatus::kInvalid);  // block too short
  CHECK(parse_proxy_header(v2(0x21, 0x21, ipv4)).status == ParseStatus::kInvalid);     // IPv6 block too short
  CHECK(parse_proxy_header(v2(0x21, 0x41, ipv4)).status == ParseStatus::kInvalid);     // family 4
  CHECK(parse_proxy_header(v2(0x21, 0x11, std::string(5000, 'x'))).status == ParseStatus::kInvalid);
  CHECK(parse_proxy_header(std::string("\r\n\r\n\0\r\nQUIX\n", 12)).status == ParseStatus::kInvalid);
}

// Found by fuzz/proxy_header_fuzzer: a bare LF inside a v1 line was accepted or refused
// depending on where TCP split the bytes.
TEST_CASE("a PROXY v1 line with a bare LF is refused however it arrives") {
  const std::string line = "PROXY UNKNOWN \n\r\n";
  CHECK(parse_proxy_header(line).status == ParseStatus::kInvalid);
  CHECK(parse_proxy_header(line.substr(0, 15)).status == ParseStatus::kInvalid);
}
