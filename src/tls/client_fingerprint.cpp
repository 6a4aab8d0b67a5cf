#include "tls/client_fingerprint.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <memory>

namespace ftpsgate::tls {

namespace {

bool is_grease(uint16_t value) { return (value & 0x0f0f) == 0x0a0a && (value >> 8) == (value & 0xff); }

std::vector<uint16_t> without_grease(const std::vector<uint16_t>& values) {
  std::vector<uint16_t> out;
  for (uint16_t v : values) {
    if (!is_grease(v)) out.push_back(v);
  }
  return out;
}

std::string hex4(uint16_t value) {
  char text[5];
  std::snprintf(text, sizeof(text), "%04x", value);
  return text;
}

std::string joined(const std::vector<uint16_t>& values) {
  std::string out;
  for (uint16_t v : values) {
    if (!out.empty()) out += ',';
    out += hex4(v);
  }
  return out;
}

std::string sha256_12(const std::string& text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(text.data(), text.size(), digest, &length, EVP_sha256(), nullptr) != 1) return "000000000000";
  std::string out;
  for (unsigned i = 0; i < 6 && i < length; ++i) {
    char byte[3];
    std::snprintf(byte, sizeof(byte), "%02x", digest[i]);
    out += byte;
  }
  return out;
}

std::string version_code(const ClientHelloFacts& hello) {
  uint16_t version = 0;
  for (uint16_t v : without_grease(hello.supported_versions)) version = std::max(version, v);
  if (version == 0) version = hello.legacy_version;
  switch (version) {
    case 0x0304: return "13";
    case 0x0303: return "12";
    case 0x0302: return "11";
    case 0x0301: return "10";
    case 0x0300: return "s3";
    default: return "00";
  }
}

std::string two_digits(std::size_t count) {
  char text[3];
  std::snprintf(text, sizeof(text), "%02zu", std::min<std::size_t>(count, 99));
  return text;
}

std::string alpn_code(const std::string& alpn) {
  if (alpn.empty()) return "00";
  const auto alnum = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
  if (alnum(alpn.front()) && alnum(alpn.back())) return std::string{alpn.front(), alpn.back()};
  // Not printable: the first and last hex digit of the value instead (as JA4 does).
  char first[3], last[3];
  std::snprintf(first, sizeof(first), "%02x", static_cast<unsigned char>(alpn.front()));
  std::snprintf(last, sizeof(last), "%02x", static_cast<unsigned char>(alpn.back()));
  return std::string{first[0], last[1]};
}

constexpr uint16_t kSni = 0x0000;
constexpr uint16_t kSignatureAlgorithms = 0x000d;
constexpr uint16_t kAlpn = 0x0010;
constexpr uint16_t kSupportedVersions = 0x002b;

std::vector<uint16_t> pairs(const unsigned char* p, std::size_t length) {
  std::vector<uint16_t> out;
  for (std::size_t i = 0; i + 1 < length; i += 2) out.push_back(static_cast<uint16_t>(p[i] << 8 | p[i + 1]));
  return out;
}

ClientHelloFacts facts_of(SSL* ssl) {
  ClientHelloFacts hello;
  hello.legacy_version = static_cast<uint16_t>(SSL_client_hello_get0_legacy_version(ssl));
  const unsigned char* p = nullptr;
  std::size_t length = SSL_client_hello_get0_ciphers(ssl, &p);
  hello.ciphers = pairs(p, length);
  int* types = nullptr;
  std::size_t count = 0;
  if (SSL_client_hello_get1_extensions_present(ssl, &types, &count) == 1) {
    for (std::size_t i = 0; i < count; ++i) hello.extensions.push_back(static_cast<uint16_t>(types[i]));
    OPENSSL_free(types);
  }
  // Each extension's own length prefix is checked against what OpenSSL hands us.
  if (SSL_client_hello_get0_ext(ssl, kSupportedVersions, &p, &length) == 1 && length >= 1 &&
      static_cast<std::size_t>(p[0]) + 1 <= length) {
    hello.supported_versions = pairs(p + 1, p[0]);
  }
  if (SSL_client_hello_get0_ext(ssl, kSignatureAlgorithms, &p, &length) == 1 && length >= 2) {
    const std::size_t list = static_cast<std::size_t>(p[0] << 8 | p[1]);
    if (list + 2 <= length) hello.signature_algorithms = pairs(p + 2, list);
  }
  if (SSL_client_hello_get0_ext(ssl, kAlpn, &p, &length) == 1 && length >= 3) {
    const std::size_t first = p[2];
    if (first + 3 <= length) hello.first_alpn.assign(reinterpret_cast<const char*>(p + 3), first);
  }
  return hello;
}

void free_fingerprint(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  std::unique_ptr<std::string> owned(static_cast<std::string*>(ptr));
}

int fingerprint_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, &free_fingerprint);
  return index;
}

int on_client_hello(SSL* ssl, int*, void*) {
  // A HelloRetryRequest brings a second ClientHello: the latest one counts.
  auto fingerprint = std::make_unique<std::string>(ja4(facts_of(ssl)));
  std::unique_ptr<std::string> previous(static_cast<std::string*>(SSL_get_ex_data(ssl, fingerprint_index())));
  if (SSL_set_ex_data(ssl, fingerprint_index(), fingerprint.get()) == 1) fingerprint.release();
  return SSL_CLIENT_HELLO_SUCCESS;
}

}  // namespace

std::string ja4(const ClientHelloFacts& hello) {
  const std::vector<uint16_t> ciphers = without_grease(hello.ciphers);
  const std::vector<uint16_t> extensions = without_grease(hello.extensions);
  const bool sni = std::find(extensions.begin(), extensions.end(), kSni) != extensions.end();
  std::string a = "t" + version_code(hello) + (sni ? "d" : "i") + two_digits(ciphers.size()) +
                  two_digits(extensions.size()) + alpn_code(hello.first_alpn);

  std::vector<uint16_t> sorted_ciphers = ciphers;
  std::sort(sorted_ciphers.begin(), sorted_ciphers.end());
  const std::string b = sorted_ciphers.empty() ? "000000000000" : sha256_12(joined(sorted_ciphers));

  std::vector<uint16_t> sorted_extensions;
  for (uint16_t type : extensions) {
    if (type != kSni && type != kAlpn) sorted_extensions.push_back(type);
  }
  std::sort(sorted_extensions.begin(), sorted_extensions.end());
  std::string c_input = joined(sorted_extensions);
  const std::vector<uint16_t> algorithms = without_grease(hello.signature_algorithms);
  if (!algorithms.empty()) c_input += "_" + joined(algorithms);
  const std::string c = sorted_extensions.empty() ? "000000000000" : sha256_12(c_input);
  return a + "_" + b + "_" + c;
}

void record_client_fingerprints(SSL_CTX* ctx) { SSL_CTX_set_client_hello_cb(ctx, &on_client_hello, nullptr); }

std::string client_fingerprint(const SSL* ssl) {
  if (ssl == nullptr) return {};
  const auto* fingerprint = static_cast<const std::string*>(SSL_get_ex_data(ssl, fingerprint_index()));
  return fingerprint != nullptr ? *fingerprint : std::string();
}

}  // namespace ftpsgate::tls
