// The gateway's pool of inside-out agent links (docs/agent-design.md 1.2-1.6, 3.3): per
// configured agent, the idle links its certificate-verified connections became, kept on the
// main loop with keepalive PINGs, and the bounded FIFO of dial requests waiting for one.
// Workers ask for a link with request() from their own thread; the hub answers on the main
// loop through the request's PostBack with the link's socket and established TLS state (the
// worker wraps them in a bufferevent), or with why not.
//
// Bounds: peers[].max_idle idle links, peers[].max_links idle plus in use (beyond either: ERR
// too_many_links and close), peers[].max_waiting waiting requests (beyond: busy at once). An
// agent with no link at all fails a request at once ("agent NAME is not connected").
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ftpsgate/config.h"
#include "hub/idle_link.h"
#include "hub/refusal_log.h"
#include "log/logger.h"
#include "metrics/metrics.h"
#include "net/deferred_delete.h"
#include "net/libevent_handles.h"
#include "net/socket_address.h"
#include "net/unique_fd.h"
#include "tls/openssl_handles.h"

namespace ftpsgate::hub {

// One worker's request for a link, shared with the hub.
struct LinkTicket {
  explicit LinkTicket(std::chrono::steady_clock::time_point until) : deadline(until) {}
  // Set by the requester when it gives up (its dial was cancelled or timed out): a waiting
  // request is then dropped, without an answer.
  std::atomic<bool> cancelled{false};
  // Past it the requester has timed out: the hub drops the request too.
  const std::chrono::steady_clock::time_point deadline;
};

enum class HandoverFailure { kNone, kNotConnected, kBusy, kShuttingDown };

// The hub's answer: a link, or a failure with its message.
struct Handover {
  net::UniqueFd fd;  // the link's socket, non-blocking
  tls::SslPtr ssl;   // established on fd (SSL_set_fd), nothing pending in it
  // Counts the link as in_use until it goes, from whichever thread drops it last.
  std::shared_ptr<void> lease;
  HandoverFailure failure = HandoverFailure::kNone;
  std::string error;  // "agent site-a is not connected", ...
};

class AgentHub : private IdleLink::Owner {
 public:
  // Called once, on the main loop. It must carry the handover to the requester's thread;
  // a handover it drops closes the link (and ends its lease).
  using PostBack = std::function<void(Handover handover)>;
  // An agent's first link arrived (up) or its last one went (down); main loop.
  using Transition = std::function<void(const std::string& agent, bool up)>;
  enum class Adopted { kIdle, kTooManyLinks, kUnknownAgent, kShuttingDown };

  // `metrics` must outlive every lease the hub hands out (they may end on workers later).
  AgentHub(event_base* base, log::Logger& logger, metrics::Metrics& metrics);
  ~AgentHub();  // shutdown(), then nothing of the hub is reachable from other threads
  AgentHub(const AgentHub&) = delete;
  AgentHub& operator=(const AgentHub&) = delete;

  // Start and every reload (main loop): the peers, their bounds, keepalive settings for new
  // links. The idle links of a peer no longer configured get ERR unknown_agent; its links in
  // use go on. Every configured peer's metric series exist from here on.
  void configure(const AgentsConfig& config);
  void on_transition(Transition hook) { transition_ = std::move(hook); }

  // Main loop, from the listener: a link whose verified certificate maps to `agent` and
  // whose source that peer allows. Anything but kIdle: it got its ERR and is closed.
  Adopted adopt(const std::string& agent, net::UniqueFd fd, tls::SslPtr ssl, const net::SocketAddress& peer);

  // Any thread. The answer comes through `post_back` on the main loop, never from inside.
  void request(const std::string& agent, std::shared_ptr<LinkTicket> ticket, PostBack post_back);

  // Main loop, at exit: idle links get ERR shutting_down, waiting requests fail, new links
  // and requests are refused. Links in use go on. No transition callbacks from here on.
  void shutdown();

  // Main loop: the agent has at least one link (idle or in use); its links by state.
  bool connected(const std::string& agent) const;
  std::size_t idle_links(const std::string& agent) const;
  std::size_t in_use_links(const std::string& agent) const;
  std::size_t waiting_requests(const std::string& agent) const;
  RefusalLog& refusals() { return refusals_; }

 private:
  class Mailbox;
  struct Lease;
  // Shared with the leases, which may end on any thread after the hub is gone.
  struct PeerCount {
    PeerCount(std::string agent, prometheus::Gauge& gauge) : name(std::move(agent)), in_use_gauge(gauge) {}
    const std::string name;
    std::atomic<uint32_t> in_use{0};
    prometheus::Gauge& in_use_gauge;
  };
  struct Waiting {
    std::shared_ptr<LinkTicket> ticket;
    PostBack post_back;
  };
  struct Peer {
    AgentPeerConfig config;
    bool configured = true;
    bool up = false;
    std::shared_ptr<PeerCount> count;
    std::vector<std::unique_ptr<IdleLink>> idle;  // oldest first
    std::deque<Waiting> waiting;
    prometheus::Gauge* idle_gauge = nullptr;
    prometheus::Gauge* up_gauge = nullptr;
  };

  static void on_wakeup(evutil_socket_t, short, void* self);
  void serve(const std::string& agent, std::shared_ptr<LinkTicket> ticket, PostBack post_back);
  void lease_ended(const std::string& agent);
  void link_ready(IdleLink& link) override;
  void link_lost(IdleLink& link, const std::string& why) override;
  Peer* find(const std::string& agent);
  const Peer* find(const std::string& agent) const;
  void prune(Peer& peer);
  // Hands idle links to waiting requests, oldest request first, while both last.
  void serve_waiting(Peer& peer);
  // An idle link to lease (no PING outstanding, nothing to read), or nullptr.
  IdleLink* pick(Peer& peer);
  void hand_over(Peer& peer, IdleLink& link, Waiting waiting);
  std::unique_ptr<IdleLink> take(Peer& peer, IdleLink& link);
  void retire(Peer& peer, IdleLink& link, tunnel::ErrReason reason);
  void fail(Waiting& waiting, HandoverFailure failure, std::string error);
  void fail_all(Peer& peer, HandoverFailure failure, const std::string& error);
  // Up/down after any change of its links; fails waiting requests once it has none.
  void update(Peer& peer);
  std::shared_ptr<void> make_lease(Peer& peer);

  event_base* base_;
  log::Logger& logger_;
  metrics::Metrics& metrics_;
  RefusalLog refusals_;
  Transition transition_;
  std::chrono::milliseconds keepalive_interval_{20000};
  std::chrono::milliseconds keepalive_timeout_{10000};
  std::map<std::string, Peer> peers_;
  uint64_t next_link_ = 0;
  bool stopping_ = false;
  // Links lost or leased from inside their own callbacks: freed from the loop.
  net::DeferredDelete<IdleLink> retired_;
  // Declared last: closed first, so no other thread reaches a half-destroyed hub.
  net::EventPtr wakeup_;
  std::shared_ptr<Mailbox> mailbox_;
};

}  // namespace ftpsgate::hub
