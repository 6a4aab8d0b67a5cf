// The agent's side of its links' TLS (docs/agent-design.md 1.1): the client SSL_CTX. TLS 1.3
// only, the agent's certificate, the gateway verified against the pinned CA file alone and
// its `server_name`, ALPN "ftpsgate-agent/1" offered and required.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "ftpsgate/agent_config.h"
#include "tls/openssl_handles.h"

namespace ftpsgate::agent {

inline constexpr std::string_view kLinkAlpn = "ftpsgate-agent/1";

class LinkClientTls {
 public:
  // nullptr with `error` set when a file cannot be loaded or the key does not match.
  static std::unique_ptr<LinkClientTls> create(const AgentSection& config, std::string& error);

  // A connection to the gateway: its certificate must name `server_name` (a DNS name, or an
  // IP address checked against the IP SANs). nullptr when OpenSSL cannot make one.
  tls::SslPtr new_ssl(const std::string& server_name) const;

  SSL_CTX* ctx() const { return ctx_.get(); }

 private:
  LinkClientTls() = default;
  tls::SslCtxPtr ctx_;
};

// After the handshake: did the gateway select our protocol? SECURITY: a server that does
// not speak ours (another TLS service behind the same name) never gets a link.
bool alpn_selected(SSL* ssl);

}  // namespace ftpsgate::agent
