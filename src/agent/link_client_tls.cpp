#include "agent/link_client_tls.h"

#include "tls/client_context.h"
#include "tls/tls_errors.h"

namespace ftpsgate::agent {

std::unique_ptr<LinkClientTls> LinkClientTls::create(const AgentSection& config, std::string& error) {
  std::unique_ptr<LinkClientTls> out(new LinkClientTls());
  out->ctx_.reset(SSL_CTX_new(TLS_client_method()));
  SSL_CTX* ctx = out->ctx_.get();
  if (ctx == nullptr) {
    error = "cannot create the link TLS context: " + tls::drain_errors();
    return nullptr;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_TICKET);
  // Links are made ahead of need: nothing to resume.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  // The cheapest suite first (the benchmark's throughput); the others stay possible.
  if (SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256") !=
      1) {
    error = "cannot set the link cipher suites: " + tls::drain_errors();
    return nullptr;
  }
  // SECURITY: the pinned CA is the only trust anchor; the system store is never loaded, so
  // no public CA can vouch for a fake gateway.
  if (SSL_CTX_load_verify_locations(ctx, config.tls_ca.c_str(), nullptr) != 1) {
    error = "cannot load agent.tls.ca " + config.tls_ca + ": " + tls::drain_errors();
    return nullptr;
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  if (SSL_CTX_use_certificate_chain_file(ctx, config.tls_cert.c_str()) != 1) {
    error = "cannot load agent.tls.cert " + config.tls_cert + ": " + tls::drain_errors();
    return nullptr;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, config.tls_key.c_str(), SSL_FILETYPE_PEM) != 1) {
    error = "cannot load agent.tls.key " + config.tls_key + ": " + tls::drain_errors();
    return nullptr;
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    error = "agent.tls.key does not match agent.tls.cert: " + tls::drain_errors();
    return nullptr;
  }
  unsigned char alpn[1 + kLinkAlpn.size()];
  alpn[0] = static_cast<unsigned char>(kLinkAlpn.size());
  kLinkAlpn.copy(reinterpret_cast<char*>(alpn + 1), kLinkAlpn.size());
  // Unlike most of OpenSSL, 0 is success here.
  if (SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn)) != 0) {
    error = "cannot set the link ALPN: " + tls::drain_errors();
    return nullptr;
  }
  return out;
}

tls::SslPtr LinkClientTls::new_ssl(const std::string& server_name) const {
  tls::SslPtr ssl(SSL_new(ctx_.get()));
  // SECURITY: always verified; there is no tls_verify: false for links.
  if (!ssl || !tls::expect_peer_name(ssl.get(), server_name, true)) return nullptr;
  return ssl;
}

bool alpn_selected(SSL* ssl) {
  const unsigned char* protocol = nullptr;
  unsigned int length = 0;
  SSL_get0_alpn_selected(ssl, &protocol, &length);
  return protocol != nullptr && std::string_view(reinterpret_cast<const char*>(protocol), length) == kLinkAlpn;
}

}  // namespace ftpsgate::agent
