#include "tls/client_context.h"

#include <arpa/inet.h>
#include <openssl/x509v3.h>

#include "tls/tls_errors.h"

namespace ftpsgate::tls {

namespace {
bool is_ip_literal(const std::string& host) {
  unsigned char buffer[16];
  return inet_pton(AF_INET, host.c_str(), buffer) == 1 || inet_pton(AF_INET6, host.c_str(), buffer) == 1;
}
}  // namespace

bool expect_peer_name(SSL* ssl, const std::string& host, bool verify) {
  const bool ip = is_ip_literal(host);
  if (!ip) SSL_set_tlsext_host_name(ssl, host.c_str());
  if (!verify) return true;
  return (ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str()) : SSL_set1_host(ssl, host.c_str())) == 1;
}

std::unique_ptr<ClientContext> ClientContext::create(const BackendConfig& config, std::vector<std::string>& errors) {
  std::unique_ptr<ClientContext> out(new ClientContext());
  out->verify_ = config.tls_verify;
  out->ctx_.reset(SSL_CTX_new(TLS_client_method()));
  SSL_CTX* ctx = out->ctx_.get();
  const std::string where = config.position.prefix() + "backend '" + config.name + "': ";
  if (ctx == nullptr) {
    errors.push_back(where + "cannot create a TLS client context: " + drain_errors());
    return nullptr;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  // Sessions are kept per control connection (for the data connections), not in a cache.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  if (config.tls_verify) {
    const bool loaded = config.tls_ca.empty()
                            ? SSL_CTX_set_default_verify_paths(ctx) == 1
                            : SSL_CTX_load_verify_locations(ctx, config.tls_ca.c_str(), nullptr) == 1;
    if (!loaded) {
      errors.push_back(where + "cannot load tls_ca " + (config.tls_ca.empty() ? "(system store)" : config.tls_ca) +
                       ": " + drain_errors());
      return nullptr;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }
  return out;
}

SslPtr ClientContext::new_ssl(const std::string& host, SSL_SESSION* resume) const {
  SslPtr ssl(SSL_new(ctx_.get()));
  if (!ssl) return ssl;
  if (!expect_peer_name(ssl.get(), host, verify_)) return nullptr;
  if (resume != nullptr) SSL_set_session(ssl.get(), resume);
  return ssl;
}

std::string client_handshake_error(SSL* ssl, const std::string& fallback) {
  if (ssl != nullptr) {
    const long verify = SSL_get_verify_result(ssl);
    if (verify != X509_V_OK) return std::string("certificate verification failed: ") + X509_verify_cert_error_string(verify);
  }
  std::string errors = drain_errors();
  return errors.empty() ? fallback : errors;
}

}  // namespace ftpsgate::tls
