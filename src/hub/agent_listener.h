// The `agents` listener (docs/agent-design.md 1.6, 2.1, 4): inside-out agents dial in here.
// At accept, before any byte: agents.from. Unauthenticated connections are bounded
// (agents.max_handshakes in all, limits::kAgentHandshakesPerSource per source address,
// agents.handshake_timeout). After the TLS handshake (hub_tls: TLS 1.3, ALPN, a certificate of
// agents.tls.client_ca): the verified certificate names exactly one peer (ERR unknown_agent
// otherwise), that peer's own `from` must allow the source, and the link goes to the hub.
// Main loop only.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ftpsgate/config.h"
#include "hub/agent_hub.h"
#include "hub/hub_tls.h"
#include "hub/link_handshake.h"
#include "log/logger.h"
#include "metrics/metrics.h"
#include "net/deferred_delete.h"
#include "net/libevent_handles.h"
#include "net/socket_address.h"
#include "session/session_limits.h"

namespace ftpsgate::hub {

class AgentListener {
 public:
  // Builds the TLS context and binds agents.address; nullptr with `error` on failure.
  // `hub` (configured with the same section) outlives the listener.
  static std::unique_ptr<AgentListener> create(event_base* base, const AgentsConfig& config, AgentHub& hub,
                                               log::Logger& logger, metrics::Metrics& metrics, std::string& error);
  ~AgentListener();
  AgentListener(const AgentListener&) = delete;
  AgentListener& operator=(const AgentListener&) = delete;

  // SIGHUP: a different agents.address needs a restart (the listener socket stays).
  std::optional<std::string> reload_conflict(const AgentsConfig& config) const;
  // SIGHUP: certificates, CA and CRL, `from`, the bounds and the peer mapping, for new
  // connections. On errors nothing changes.
  bool reload(const AgentsConfig& config, std::vector<std::string>& errors);
  // Stops accepting; handshakes in flight are dropped. Links already made stay with the hub.
  void stop();
  // The bound address (port 0 in the configuration: the port the kernel chose).
  const net::SocketAddress& local() const { return local_; }

 private:
  AgentListener(event_base* base, AgentHub& hub, log::Logger& logger, metrics::Metrics& metrics);
  static void on_accept(evconnlistener*, evutil_socket_t fd, sockaddr* sa, int len, void* self);
  void accept(net::UniqueFd fd, const net::SocketAddress& peer);
  void handshake_done(uint64_t key, LinkHandshake::Outcome outcome, net::UniqueFd fd, tls::SslPtr ssl,
                      const std::string& error);
  // The verified certificate's agent, once the handshake is done: result name on refusal.
  void admit_link(const net::SocketAddress& peer, net::UniqueFd fd, tls::SslPtr ssl);
  void refuse(std::string_view result, const net::SocketAddress& peer, const std::string& subject,
              const std::string& message);

  struct Pending {
    std::unique_ptr<LinkHandshake> handshake;
    net::SocketAddress peer;
  };

  event_base* base_;
  AgentHub& hub_;
  log::Logger& logger_;
  metrics::Metrics& metrics_;
  std::shared_ptr<const AgentsConfig> config_;
  std::unique_ptr<HubTls> tls_;
  net::SocketAddress local_;
  // Declared before the handshakes: they give their slots back here.
  session::SessionLimits slots_;
  std::map<uint64_t, Pending> pending_;
  uint64_t next_key_ = 0;
  // Handshakes end from inside their own callbacks: freed from the loop.
  net::DeferredDelete<LinkHandshake> retired_;
  net::ListenerPtr listener_;
};

}  // namespace ftpsgate::hub
