// A throwaway PKI for the agent-link tests (hub_agent_links_test, agent_link_test): EC
// P-256 certificates made with the OpenSSL API, valid for a day, written as PEM files.
#pragma once

#include <doctest/doctest.h>
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <string>

#include "tls/openssl_handles.h"
#include "tls/self_signed.h"

namespace ftpsgate::test_pki {

struct Identity {
  tls::EvpPkeyPtr key;
  tls::X509Ptr cert;
};

// A CA when `issuer` is null (self-signed), else a leaf signed by it with `san` ("" = none).
inline Identity issue(const std::string& cn, const Identity* issuer, const std::string& san) {
  Identity out{tls::EvpPkeyPtr(EVP_EC_gen("P-256")), tls::X509Ptr(X509_new())};
  REQUIRE(out.key);
  X509* cert = out.cert.get();
  unsigned char serial[16];
  RAND_bytes(serial, sizeof(serial));
  serial[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(serial, sizeof(serial), nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert));
  BN_free(bn);
  X509_set_version(cert, 2);
  X509_gmtime_adj(X509_getm_notBefore(cert), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert), 60L * 60 * 24);
  X509_set_pubkey(cert, out.key.get());
  X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509* issuer_cert = issuer != nullptr ? issuer->cert.get() : cert;
  X509_set_issuer_name(cert, X509_get_subject_name(issuer_cert));
  if (issuer == nullptr) {
    REQUIRE(tls::add_extension(cert, cert, NID_basic_constraints, "critical,CA:TRUE"));
    REQUIRE(tls::add_extension(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign"));
    REQUIRE(tls::add_extension(cert, cert, NID_subject_key_identifier, "hash"));
  } else {
    REQUIRE(tls::add_extension(cert, issuer_cert, NID_basic_constraints, "critical,CA:FALSE"));
    REQUIRE(tls::add_extension(cert, issuer_cert, NID_authority_key_identifier, "keyid"));
    if (!san.empty()) REQUIRE(tls::add_extension(cert, issuer_cert, NID_subject_alt_name, san.c_str()));
  }
  REQUIRE(X509_sign(cert, issuer != nullptr ? issuer->key.get() : out.key.get(), EVP_sha256()) != 0);
  return out;
}

// The certificate, or with `key` the private key, as PEM.
inline void write_pem(const std::string& path, const Identity& id, bool key) {
  BIO* bio = BIO_new_file(path.c_str(), "w");
  REQUIRE(bio != nullptr);
  const int ok = key ? PEM_write_bio_PrivateKey(bio, id.key.get(), nullptr, nullptr, 0, nullptr, nullptr)
                     : PEM_write_bio_X509(bio, id.cert.get());
  BIO_free(bio);
  REQUIRE(ok == 1);
}

}  // namespace ftpsgate::test_pki
