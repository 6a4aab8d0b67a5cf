// The client side towards FTPS backends (backends[].tls): TLS 1.2+, the backend's
// certificate verified against tls_ca (or the system trust store) and the server entry's
// host name or IP address, unless tls_verify is false.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "ftpsgate/config.h"
#include "tls/openssl_handles.h"

namespace ftpsgate::tls {

class ClientContext {
 public:
  static std::unique_ptr<ClientContext> create(const BackendConfig& config, std::vector<std::string>& errors);

  // A connection to `host` (a DNS name: SNI and name check; an IP address: IP SAN check),
  // resuming `resume` when given (data connections resume their control connection).
  SslPtr new_ssl(const std::string& host, SSL_SESSION* resume) const;

 private:
  ClientContext() = default;
  SslCtxPtr ctx_;
  bool verify_ = true;
};

// SNI for a DNS name, and with `verify` the certificate check of that name (or of an IP
// address against the IP SANs). False when OpenSSL refuses the name.
bool expect_peer_name(SSL* ssl, const std::string& host, bool verify);

// Why a client handshake failed, with the certificate verification error when there is one.
std::string client_handshake_error(SSL* ssl, const std::string& fallback);

}  // namespace ftpsgate::tls
