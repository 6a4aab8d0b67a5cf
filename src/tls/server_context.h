// The server-side SSL_CTX built from tls: config (protocols, ciphers, certificates,
// session cache/tickets with control-session binding).
#pragma once

#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "ftpsgate/config.h"
#include "tls/openssl_handles.h"
#include "tls/session_cache.h"
#include "tls/ticket_keys.h"

namespace ftpsgate::tls {

struct CertificateInfo {
  std::string name;     // file name or "self-signed"
  std::string subject;  // one-line subject
  time_t not_after = 0;
};

class ServerContext {
 public:
  // Errors: each a readable message naming the file; warnings: e.g. an expired certificate.
  // `class_verifies`: some class overrides verify_client to optional/on, so certificates
  // are requested at the TLS level and enforced per class after the handshake.
  static std::unique_ptr<ServerContext> create(const TlsConfig& config, bool class_verifies,
                                               std::vector<std::string>& errors, std::vector<std::string>& warnings);

  SSL_CTX* get() const { return ctx_.get(); }
  SslPtr new_ssl() const { return SslPtr(SSL_new(ctx_.get())); }
  const std::vector<CertificateInfo>& certificates() const { return certificates_; }
  // Without tls.ticket_key_file each context has random ticket keys of its own; these
  // make it use `keys` (which must outlive it) instead, so a session issued under an
  // earlier configuration still resumes after a reload. False when it has keys of its own.
  bool share_ticket_keys(TicketKeys& keys);
  // Sessions (TLS 1.2 session IDs) also go to `cache`, shared with other contexts, which
  // must outlive this one.
  void share_session_cache(SessionCache& cache);

 private:
  ServerContext() = default;
  static int on_servername(SSL* ssl, int* alert, void* arg);

  struct NamedContext {
    std::vector<std::string> names;  // sorted, lower case; "*.x" wildcards allowed
    SslCtxPtr ctx;
    std::vector<CertificateConfig> entries;
  };
  // Declared before the contexts: their ticket callback points into this.
  std::unique_ptr<TicketKeys> ticket_keys_;
  // Declared before ctx_: the SNI callback of ctx_ points into this.
  std::vector<NamedContext> named_;
  SslCtxPtr ctx_;
  std::vector<CertificateInfo> certificates_;
};

}  // namespace ftpsgate::tls
