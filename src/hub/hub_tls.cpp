#include "hub/hub_tls.h"

#include <openssl/x509_vfy.h>

#include <cstring>

#include "tls/tls_errors.h"

namespace ftpsgate::hub {

namespace {

// SECURITY: protocol confusion. Only an agent speaking our versioned protocol gets a link;
// an FTPS client or anything else that reaches this port fails the handshake.
int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen,
                void*) {
  unsigned int at = 0;
  while (at < inlen) {
    const unsigned int length = in[at];
    if (length == 0 || at + 1 + length > inlen) break;  // malformed list
    if (length == kAgentAlpn.size() && std::memcmp(in + at + 1, kAgentAlpn.data(), length) == 0) {
      *out = in + at + 1;
      *outlen = static_cast<unsigned char>(length);
      return SSL_TLSEXT_ERR_OK;
    }
    at += 1 + length;
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

}  // namespace

bool HubTls::alpn_agreed(const SSL* ssl) {
  const unsigned char* selected = nullptr;
  unsigned int length = 0;
  SSL_get0_alpn_selected(ssl, &selected, &length);
  return selected != nullptr && length == kAgentAlpn.size() && std::memcmp(selected, kAgentAlpn.data(), length) == 0;
}

std::unique_ptr<HubTls> HubTls::create(const AgentsConfig& config, std::vector<std::string>& errors) {
  const std::size_t errors_before = errors.size();
  std::unique_ptr<HubTls> hub(new HubTls());
  hub->ctx_.reset(SSL_CTX_new(TLS_server_method()));
  SSL_CTX* ctx = hub->ctx_.get();
  if (ctx == nullptr) {
    errors.push_back("agents: cannot create a TLS context: " + tls::drain_errors());
    return nullptr;
  }
  // TLS 1.3 only; the cheapest suite first (links are made ahead of need, but the
  // benchmark counts every byte's cipher).
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256");
  // SECURITY: links are made ahead of need; no resumption means no ticket keys to protect
  // and no session an agent could carry to another gateway or peer identity.
  SSL_CTX_set_num_tickets(ctx, 0);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_alpn_select_cb(ctx, &select_alpn, nullptr);

  const CertificateConfig& cert = config.certificate;
  const std::string at = cert.position.prefix();
  if (SSL_CTX_use_certificate_chain_file(ctx, cert.cert.c_str()) != 1) {
    errors.push_back(at + "agents.tls.cert " + cert.cert + ": cannot load certificate: " + tls::drain_errors());
  } else if (SSL_CTX_use_PrivateKey_file(ctx, cert.key.c_str(), SSL_FILETYPE_PEM) != 1) {
    errors.push_back(at + "agents.tls.key " + cert.key + ": cannot load private key: " + tls::drain_errors());
  } else if (SSL_CTX_check_private_key(ctx) != 1) {
    tls::drain_errors();
    errors.push_back(at + "agents.tls.key " + cert.key + ": private key does not match certificate " + cert.cert);
  }

  // SECURITY: only certificates of the agents' own CA; a user's FTPS client certificate
  // (tls.client_ca) must never become an agent.
  const std::string ca_at = config.client_ca_position.prefix();
  if (config.client_ca.empty()) {
    errors.push_back(ca_at + "agents.tls.client_ca is required");
  } else if (SSL_CTX_load_verify_locations(ctx, config.client_ca.c_str(), nullptr) != 1) {
    errors.push_back(ca_at + "agents.tls.client_ca " + config.client_ca + ": cannot load: " + tls::drain_errors());
  } else if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(config.client_ca.c_str())) {
    SSL_CTX_set_client_CA_list(ctx, names);
  }
  tls::drain_errors();
  if (!config.crl.empty()) {
    X509_STORE* store = SSL_CTX_get_cert_store(ctx);
    if (X509_STORE_load_file(store, config.crl.c_str()) != 1) {
      errors.push_back(ca_at + "agents.tls.crl " + config.crl + ": cannot load: " + tls::drain_errors());
    } else {
      X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
    }
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  SSL_CTX_set_verify_depth(ctx, 9);
  if (errors.size() != errors_before) return nullptr;
  return hub;
}

}  // namespace ftpsgate::hub
