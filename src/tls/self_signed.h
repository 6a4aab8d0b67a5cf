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

std::optional<KeyAndCertificate> make_self_signed(const std::string& common_name, std::string& error);

}  // namespace ftpsgate::tls
