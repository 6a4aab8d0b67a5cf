// libFuzzer target: the PROXY protocol v1/v2 header parser (src/proxy/proxy_header.h).
// The input is the first bytes of a connection. The gateway peeks at what has arrived so
// far and parses again on every read (src/net/proxy_header_reader.cpp), so the answer
// must not depend on where TCP cut the stream.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "proxy/proxy_header.h"

namespace {

using namespace ftpsgate::proxy;

constexpr std::string_view kV2Signature{"\r\n\r\n\0\r\nQUIT\n", 12};

bool same(const ProxyHeader& a, const ProxyHeader& b) {
  return a.has_addresses == b.has_addresses && a.source_ip == b.source_ip && a.source_port == b.source_port &&
         a.destination_ip == b.destination_ip && a.destination_port == b.destination_port &&
         a.version == b.version && a.length == b.length;
}

bool same_addresses(const ProxyHeader& a, const ProxyHeader& b) {
  return a.has_addresses == b.has_addresses && a.source_ip == b.source_ip && a.source_port == b.source_port &&
         a.destination_ip == b.destination_ip && a.destination_port == b.destination_port;
}

// The address family of a canonical numeric address, or 0.
int family_of(const std::string& ip) {
  if (ip.find('\0') != std::string::npos) return 0;
  std::array<unsigned char, sizeof(in6_addr)> raw{};
  std::array<char, INET6_ADDRSTRLEN> text{};
  for (const int family : {AF_INET, AF_INET6}) {
    if (inet_pton(family, ip.c_str(), raw.data()) == 1 &&
        inet_ntop(family, raw.data(), text.data(), text.size()) != nullptr && ip == text.data()) {
      return family;
    }
  }
  return 0;
}

std::string encode_v1(const ProxyHeader& h, int family) {
  return std::string("PROXY ") + (family == AF_INET ? "TCP4 " : "TCP6 ") + h.source_ip + " " + h.destination_ip +
         " " + std::to_string(h.source_port) + " " + std::to_string(h.destination_port) + "\r\n";
}

std::string encode_v2(const ProxyHeader& h, int family) {
  std::string out(kV2Signature);
  out.push_back('\x21');                                    // version 2, PROXY
  out.push_back(family == AF_INET ? '\x11' : '\x21');       // TCP over IPv4 / IPv6
  const std::size_t size = family == AF_INET ? 4 : 16;
  const std::size_t block = 2 * size + 4;
  out.push_back(static_cast<char>(block >> 8));
  out.push_back(static_cast<char>(block & 0xff));
  std::array<unsigned char, sizeof(in6_addr)> raw{};
  for (const std::string* ip : {&h.source_ip, &h.destination_ip}) {
    FUZZ_CHECK(inet_pton(family, ip->c_str(), raw.data()) == 1);
    out.append(reinterpret_cast<const char*>(raw.data()), size);
  }
  for (const uint16_t port : {h.source_port, h.destination_port}) {
    out.push_back(static_cast<char>(port >> 8));
    out.push_back(static_cast<char>(port & 0xff));
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const ParseResult result = parse_proxy_header(bytes);

  // The reader peeks at most kMaxV2Length bytes and waits for more on kNeedMore: a full
  // buffer must decide.
  if (bytes.size() >= kMaxV2Length) FUZZ_CHECK(result.status != ParseStatus::kNeedMore);
  if (result.status == ParseStatus::kInvalid) FUZZ_CHECK(!result.error.empty());
  if (result.status != ParseStatus::kDone) return 0;

  const ProxyHeader& h = result.header;
  // SECURITY: the reader consumes exactly `length` bytes of what it peeked.
  FUZZ_CHECK(h.length <= bytes.size());
  if (h.version == 1) {
    FUZZ_CHECK(h.length >= 8 && h.length <= kMaxV1Length);
    FUZZ_CHECK(bytes.substr(0, 6) == "PROXY ");
    FUZZ_CHECK(bytes.find("\r\n") == h.length - 2);
  } else {
    FUZZ_CHECK(h.version == 2);
    FUZZ_CHECK(h.length >= 16 && h.length <= kMaxV2Length);
    FUZZ_CHECK(bytes.substr(0, kV2Signature.size()) == kV2Signature);
  }

  int family = 0;
  if (h.has_addresses) {
    family = family_of(h.source_ip);
    FUZZ_CHECK(family != 0 && family_of(h.destination_ip) == family);
  } else {
    FUZZ_CHECK(h.source_ip.empty() && h.destination_ip.empty() && h.source_port == 0 && h.destination_port == 0);
  }

  // The header does not depend on the bytes after it...
  const ParseResult exact = parse_proxy_header(bytes.substr(0, h.length));
  FUZZ_CHECK(exact.status == ParseStatus::kDone && same(exact.header, h));
  // ...and no earlier cut of the stream ends in a different verdict: every proper prefix
  // of an accepted header asks for more bytes.
  for (std::size_t cut = 0; cut < h.length; ++cut) {
    FUZZ_CHECK(parse_proxy_header(bytes.substr(0, cut)).status == ParseStatus::kNeedMore);
  }

  if (h.has_addresses) {
    // Re-encoded in either version, the addresses come back the same.
    const std::string v1 = encode_v1(h, family);
    const ParseResult r1 = parse_proxy_header(v1);
    FUZZ_CHECK(r1.status == ParseStatus::kDone && same_addresses(r1.header, h) && r1.header.length == v1.size());
    const std::string v2 = encode_v2(h, family);
    const ParseResult r2 = parse_proxy_header(v2);
    FUZZ_CHECK(r2.status == ParseStatus::kDone && same_addresses(r2.header, h) && r2.header.length == v2.size());
  }
  return 0;
}
