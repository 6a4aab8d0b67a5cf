// In-memory self-signed ECDSA P-256 certificate for the embedded default config.
#pragma once

#include <optional>
#include <string>

#include "tls/openssl_handles.h"

namespace ftpsgate::tls {

struct KeyAndCertificate {
  EvpPkeyPtr key;
  X509Ptr cert;
};

// An X.509v3 extension in OpenSSL's config syntax ("critical,CA:FALSE"), `issuer` for the
// ones that refer to it (authorityKeyIdentifier); the certificate itself when self-signed.
bool add_extension(X509* cert, X509* issuer, int nid, const char* value);

std::optional<KeyAndCertificate> make_self_signed(const std::string& common_name, std::string& error);

}  // namespace ftpsgate::tls
