// The gateway's TLS server context for inside-out agent links (docs/agent-design.md 1.1):
// TLS 1.3 only, ALPN "ftpsgate-agent/1" required, a client certificate from agents.tls.client_ca
// required, no tickets and no session cache. Never the FTPS clients' tls::ServerContext: client
// ticket keys, session binding and SNI sets never mix with agents.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ftpsgate/config.h"
#include "tls/openssl_handles.h"

namespace ftpsgate::hub {

// The only protocol an agent link speaks; ALPN versions it (no hello line).
inline constexpr std::string_view kAgentAlpn = "ftpsgate-agent/1";

class HubTls {
 public:
  // Errors name the file they concern; nullptr when there is any. For start, --check and
  // reload (a failed reload keeps the context in use).
  static std::unique_ptr<HubTls> create(const AgentsConfig& config, std::vector<std::string>& errors);
  HubTls(const HubTls&) = delete;
  HubTls& operator=(const HubTls&) = delete;

  SSL_CTX* get() const { return ctx_.get(); }
  // A fresh server-side SSL. It holds its own reference to the context (SSL_new), so a
  // reload may drop this object while links made from it live on.
  tls::SslPtr new_ssl() const { return tls::SslPtr(SSL_new(ctx_.get())); }
  // After a completed handshake: whether the peer agreed on kAgentAlpn. A client that
  // sent no ALPN at all never reaches the select callback, so this is checked too.
  static bool alpn_agreed(const SSL* ssl);

 private:
  HubTls() = default;
  tls::SslCtxPtr ctx_;
};

}  // namespace ftpsgate::hub
