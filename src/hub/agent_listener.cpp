#include "hub/agent_listener.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "ftpsgate/limits.h"
#include "identity/certificate_rules.h"
#include "policy/client_class.h"
#include "tls/certificate_facts.h"

namespace ftpsgate::hub {

namespace {

// The one peer a verified certificate names, or nullptr. Each peer is one rule
// {field, equals, user = name}, tried on its own.
// SECURITY: a certificate that two peers' rules both match is ambiguous and maps nobody (a
// wrongly overlapping configuration must not hand one agent's sessions to another), and a
// rule with an empty `equals` (which identity rules read as "any value") maps nobody either.
const AgentPeerConfig* map_peer(const AgentsConfig& config, const identity::CertificateFacts& facts, bool& ambiguous) {
  const AgentPeerConfig* found = nullptr;
  ambiguous = false;
  for (const auto& peer : config.peers) {
    if (peer.certificate.equals.empty()) continue;
    identity::CertificateRule rule;
    rule.field = peer.certificate.field;
    rule.equals = peer.certificate.equals;
    rule.user = peer.name;
    if (!identity::map_certificate({rule}, facts)) continue;
    if (found != nullptr) {
      ambiguous = true;
      return nullptr;
    }
    found = &peer;
  }
  return found;
}

}  // namespace

AgentListener::AgentListener(event_base* base, AgentHub& hub, log::Logger& logger, metrics::Metrics& metrics)
    : base_(base), hub_(hub), logger_(logger), metrics_(metrics), retired_(base) {}

AgentListener::~AgentListener() { stop(); }

std::unique_ptr<AgentListener> AgentListener::create(event_base* base, const AgentsConfig& config, AgentHub& hub,
                                                     log::Logger& logger, metrics::Metrics& metrics,
                                                     std::string& error) {
  std::unique_ptr<AgentListener> listener(new AgentListener(base, hub, logger, metrics));
  std::vector<std::string> errors;
  listener->tls_ = HubTls::create(config, errors);
  if (!listener->tls_) {
    error = errors.empty() ? "agents: cannot create the TLS context" : errors.front();
    return nullptr;
  }
  listener->config_ = std::make_shared<const AgentsConfig>(config);
  metrics.declare_agent_handshakes();
  auto address = net::SocketAddress::resolve(config.address.host, config.address.port);
  if (!address) {
    error = "agents: cannot resolve " + config.address.to_string();
    return nullptr;
  }
  listener->listener_.reset(evconnlistener_new_bind(base, &AgentListener::on_accept, listener.get(),
                                                    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
                                                    limits::kListenBacklog, address->get(),
                                                    static_cast<int>(address->length())));
  if (!listener->listener_) {
    error = "agents: cannot listen on " + config.address.to_string() + ": " +
            evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR());
    return nullptr;
  }
  auto local = net::SocketAddress::local_of(evconnlistener_get_fd(listener->listener_.get()));
  listener->local_ = local ? *local : *address;
  return listener;
}

std::optional<std::string> AgentListener::reload_conflict(const AgentsConfig& config) const {
  if (config.address.to_string() == config_->address.to_string()) return std::nullopt;
  return "agents.address " + config_->address.to_string() + " -> " + config.address.to_string();
}

bool AgentListener::reload(const AgentsConfig& config, std::vector<std::string>& errors) {
  auto tls = HubTls::create(config, errors);
  if (!tls) return false;
  // Handshakes in flight keep the SSL they started with (it holds its own context).
  tls_ = std::move(tls);
  config_ = std::make_shared<const AgentsConfig>(config);
  return true;
}

void AgentListener::stop() {
  listener_.reset();
  for (auto& [key, pending] : pending_) slots_.release(pending.peer.ip());
  pending_.clear();
  retired_.clear();
}

void AgentListener::on_accept(evconnlistener*, evutil_socket_t fd, sockaddr* sa, int len, void* self) {
  net::UniqueFd accepted(fd);
  auto peer = net::SocketAddress::from_sockaddr(sa, static_cast<socklen_t>(len));
  if (!peer) return;  // closes it
  static_cast<AgentListener*>(self)->accept(std::move(accepted), *peer);
}

void AgentListener::refuse(std::string_view result, const net::SocketAddress& peer, const std::string& subject,
                           const std::string& message) {
  metrics_.agent_handshakes(result).Increment();
  hub_.refusals().refused(result, peer.to_string(), subject, message);
}

void AgentListener::accept(net::UniqueFd fd, const net::SocketAddress& peer) {
  const AgentsConfig& config = *config_;
  const std::string ip = peer.ip();
  // SECURITY: the internet reaches this port. Sources outside agents.from are closed before
  // a byte is read or written (no TLS work for scanners and floods).
  if (!config.from.empty() && !policy::any_contains(config.from, ip)) {
    refuse("source_not_allowed", peer, "", "source address not in agents.from");
    return;  // closes it
  }
  // SECURITY: unauthenticated connections are bounded in all and per source, and each has
  // agents.handshake_timeout to finish.
  if (slots_.admit(ip, config.max_handshakes, limits::kAgentHandshakesPerSource) !=
      session::SessionLimits::Admission::kAdmitted) {
    refuse("over_limit", peer, "", "too many unauthenticated agent connections (max_handshakes, or per source)");
    return;
  }
  const int on = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
  // A link relays as it gets: a command or a close_notify must not wait for the agent's
  // delayed ACK of the write before it (Nagle). The agent does the same on its side.
  setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
  auto ssl = tls_->new_ssl();
  if (!ssl) {
    slots_.release(ip);
    refuse("failure", peer, "", "cannot create a TLS connection");
    return;
  }
  const uint64_t key = ++next_key_;
  auto handshake =
      std::make_unique<LinkHandshake>(base_, std::move(fd), std::move(ssl), config.handshake_timeout,
                                      [this, key](LinkHandshake::Outcome outcome, net::UniqueFd done_fd,
                                                  tls::SslPtr done_ssl, const std::string& error) {
                                        handshake_done(key, outcome, std::move(done_fd), std::move(done_ssl), error);
                                      });
  // Tracked before it starts: it may finish at once and retire itself.
  LinkHandshake* raw = handshake.get();
  pending_.emplace(key, Pending{std::move(handshake), peer});
  raw->start();
}

void AgentListener::handshake_done(uint64_t key, LinkHandshake::Outcome outcome, net::UniqueFd fd, tls::SslPtr ssl,
                                   const std::string& error) {
  auto it = pending_.find(key);
  if (it == pending_.end()) return;
  const net::SocketAddress peer = it->second.peer;
  // The handshake is on the call stack: freed from the loop.
  retired_.retire(std::move(it->second.handshake));
  pending_.erase(it);
  slots_.release(peer.ip());
  switch (outcome) {
    case LinkHandshake::Outcome::kTimedOut:
      refuse("timeout", peer, "", error);
      return;
    case LinkHandshake::Outcome::kFailed:
      refuse("failure", peer, "", error);
      return;
    case LinkHandshake::Outcome::kDone:
      admit_link(peer, std::move(fd), std::move(ssl));
      return;
  }
}

void AgentListener::admit_link(const net::SocketAddress& peer, net::UniqueFd fd, tls::SslPtr ssl) {
  const AgentsConfig& config = *config_;
  // A client that offered no ALPN at all never met the select callback.
  if (!HubTls::alpn_agreed(ssl.get())) {
    refuse("failure", peer, "", "no ALPN " + std::string(kAgentAlpn));
    return;
  }
  const auto facts = tls::verified_certificate_facts(ssl.get());
  if (!facts) {
    refuse("failure", peer, "", "no verified client certificate");
    return;
  }
  bool ambiguous = false;
  const AgentPeerConfig* agent = map_peer(config, *facts, ambiguous);
  if (agent == nullptr) {
    send_final_line(ssl.get(), tunnel::build_err(tunnel::ErrReason::kUnknownAgent));
    refuse("unknown_agent", peer, facts->subject_dn,
           ambiguous ? "certificate matches several agents.peers" : "certificate matches no agents.peers entry");
    return;
  }
  // SECURITY: a stolen agent key used from elsewhere: the peer's own `from` ties the
  // name to its egress addresses.
  if (!agent->from.empty() && !policy::any_contains(agent->from, peer.ip())) {
    send_final_line(ssl.get(), tunnel::build_err(tunnel::ErrReason::kUnknownAgent));
    refuse("source_not_allowed", peer, facts->subject_dn, "agent " + agent->name + ": source not in its from");
    return;
  }
  switch (hub_.adopt(agent->name, std::move(fd), std::move(ssl), peer)) {
    case AgentHub::Adopted::kIdle:
      metrics_.agent_handshakes("success").Increment();
      return;
    case AgentHub::Adopted::kTooManyLinks:
      metrics_.agent_handshakes("too_many_links").Increment();  // the hub logged it
      return;
    case AgentHub::Adopted::kUnknownAgent:
      refuse("unknown_agent", peer, facts->subject_dn, "agent " + agent->name + " is not configured");
      return;
    case AgentHub::Adopted::kShuttingDown:
      refuse("failure", peer, facts->subject_dn, "gateway shutting down");
      return;
  }
}

}  // namespace ftpsgate::hub
