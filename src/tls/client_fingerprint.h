// A client's TLS fingerprint, JA4-style (FoxIO's JA4 "a_b_c" layout), from the ClientHello
// that OpenSSL's client-hello callback shows us: it names the client software (curl,
// Python, Java, lftp...) in logs without trusting anything the client says about itself.
#pragma once

#include <openssl/ssl.h>

#include <cstdint>
#include <string>
#include <vector>

namespace ftpsgate::tls {

struct ClientHelloFacts {
  uint16_t legacy_version = 0;
  std::vector<uint16_t> supported_versions;  // extension 43, in the client's order
  std::vector<uint16_t> ciphers;
  std::vector<uint16_t> extensions;  // types present
  std::vector<uint16_t> signature_algorithms;  // extension 13, in the client's order
  std::string first_alpn;  // the first protocol of extension 16, empty without one
};

// "t13d1516h2_8daaf6152771_e5627efa2ab1": protocol and version, SNI or not, cipher and
// extension counts, ALPN's first and last character; then the first 12 hex digits of
// SHA-256 over the sorted ciphers, and over the sorted extensions (without SNI and ALPN)
// followed by the signature algorithms. GREASE values are ignored throughout.
std::string ja4(const ClientHelloFacts& hello);

// Records the JA4 of every ClientHello on its SSL (a client-hello callback on `ctx`).
void record_client_fingerprints(SSL_CTX* ctx);
// The JA4 recorded for `ssl`; empty when none was.
std::string client_fingerprint(const SSL* ssl);

}  // namespace ftpsgate::tls
