// What a verified client certificate says about its holder, for the `certificate` auth
// provider's rules (identity/certificate_rules.h).
#pragma once

#include <openssl/ssl.h>

#include <optional>

#include "identity/certificate_rules.h"

namespace ftpsgate::tls {

// The peer certificate's subject and subjectAltName entries, only when the handshake
// verified it (X509_V_OK); nullopt otherwise.
std::optional<identity::CertificateFacts> verified_certificate_facts(SSL* ssl);

}  // namespace ftpsgate::tls
