#include <doctest/doctest.h>

#include "tls/client_fingerprint.h"

using ftpsgate::tls::ClientHelloFacts;
using ftpsgate::tls::ja4;

namespace {

// A TLS 1.3 ClientHello: SNI, ALPN "h2", three ciphers, five extensions.
ClientHelloFacts hello() {
  ClientHelloFacts h;
  h.legacy_version = 0x0303;
  h.supported_versions = {0x0304, 0x0303};
  h.ciphers = {0xc02b, 0x1301, 0x002f};
  h.extensions = {0x0000, 0x0010, 0x002b, 0x000d, 0x000a};
  h.signature_algorithms = {0x0403, 0x0804};
  h.first_alpn = "h2";
  return h;
}

}  // namespace

TEST_CASE("JA4: version, SNI, counts and ALPN, then the two truncated SHA-256 parts") {
  // b = sha256("002f,1301,c02b"), c = sha256("000a,000d,002b_0403,0804"): sorted ciphers;
  // sorted extensions without SNI and ALPN, then the signature algorithms in order.
  CHECK(ja4(hello()) == "t13d0305h2_58a34ed92d94_fbabbea27ee8");
}

TEST_CASE("JA4 ignores GREASE values everywhere") {
  ClientHelloFacts greased = hello();
  greased.ciphers.insert(greased.ciphers.begin(), 0x0a0a);
  greased.extensions.push_back(0xfafa);
  greased.supported_versions.insert(greased.supported_versions.begin(), 0x3a3a);
  greased.signature_algorithms.push_back(0x5a5a);
  CHECK(ja4(greased) == ja4(hello()));
}

TEST_CASE("JA4 without SNI, ALPN or signature algorithms") {
  ClientHelloFacts h = hello();
  h.extensions = {0x002b, 0x000d, 0x000a};
  h.first_alpn.clear();
  h.signature_algorithms.clear();
  CHECK(ja4(h) == "t13i030300_58a34ed92d94_304562746881");
}

TEST_CASE("JA4 falls back to the legacy version and marks empty lists with zeros") {
  ClientHelloFacts h;
  h.legacy_version = 0x0303;
  CHECK(ja4(h) == "t12i000000_000000000000_000000000000");
  h.legacy_version = 0x0200;
  CHECK(ja4(h).substr(0, 3) == "t00");
}

TEST_CASE("JA4 shows a non-alphanumeric ALPN by its hex digits") {
  ClientHelloFacts h = hello();
  h.first_alpn = std::string("\x01\xab", 2);
  CHECK(ja4(h).substr(8, 2) == "0b");
}
