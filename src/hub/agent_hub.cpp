#include "hub/agent_hub.h"

#include <algorithm>
#include <mutex>
#include <set>

namespace ftpsgate::hub {

// The thread-safe door into the main loop: requests from workers, lease ends from anywhere.
// Shared with the leases, so it outlives the hub; closed by the hub's destructor, after which
// posts are refused (and their jobs dropped on the poster's thread).
class AgentHub::Mailbox {
 public:
  using Job = std::function<void(AgentHub&)>;
  explicit Mailbox(event* wakeup) : wakeup_(wakeup) {}

  bool post(Job job) {
    std::lock_guard lock(mutex_);
    if (wakeup_ == nullptr) return false;
    jobs_.push_back(std::move(job));
    event_active(wakeup_, EV_READ, 0);
    return true;
  }
  std::deque<Job> take() {
    std::lock_guard lock(mutex_);
    std::deque<Job> jobs;
    jobs.swap(jobs_);
    return jobs;
  }
  // Returns the jobs never run: the caller drops them outside the lock (dropping one may
  // end a lease, which posts here).
  std::deque<Job> close() {
    std::lock_guard lock(mutex_);
    wakeup_ = nullptr;
    std::deque<Job> jobs;
    jobs.swap(jobs_);
    return jobs;
  }

 private:
  std::mutex mutex_;
  event* wakeup_;  // the hub's; null once closed
  std::deque<Job> jobs_;
};

// The in_use count of one leased link; its end reaches the hub through the mailbox.
struct AgentHub::Lease {
  Lease(std::shared_ptr<PeerCount> counted, std::weak_ptr<Mailbox> box)
      : count(std::move(counted)), mailbox(std::move(box)) {}
  ~Lease() {
    count->in_use.fetch_sub(1);
    count->in_use_gauge.Decrement();
    if (auto box = mailbox.lock()) {
      box->post([agent = count->name](AgentHub& hub) { hub.lease_ended(agent); });
    }
  }
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  std::shared_ptr<PeerCount> count;
  std::weak_ptr<Mailbox> mailbox;
};

AgentHub::AgentHub(event_base* base, log::Logger& logger, metrics::Metrics& metrics)
    : base_(base),
      logger_(logger),
      metrics_(metrics),
      refusals_(base, logger),
      retired_(base),
      wakeup_(event_new(base, -1, 0, &AgentHub::on_wakeup, this)),
      mailbox_(std::make_shared<Mailbox>(wakeup_.get())) {}

AgentHub::~AgentHub() {
  shutdown();
  auto never_run = mailbox_->close();
  never_run.clear();  // requests dropped: their PostBacks never run
  for (auto& [name, peer] : peers_) peer.waiting.clear();
  retired_.clear();
}

void AgentHub::on_wakeup(evutil_socket_t, short, void* self) {
  auto* hub = static_cast<AgentHub*>(self);
  for (auto& job : hub->mailbox_->take()) job(*hub);
}

void AgentHub::configure(const AgentsConfig& config) {
  keepalive_interval_ = config.keepalive_interval;
  keepalive_timeout_ = config.keepalive_timeout;
  std::set<std::string> names;
  for (const auto& peer_config : config.peers) {
    names.insert(peer_config.name);
    auto it = peers_.find(peer_config.name);
    if (it == peers_.end()) {
      metrics_.declare_agent(peer_config.name);
      Peer peer;
      peer.count =
          std::make_shared<PeerCount>(peer_config.name, metrics_.agent_connections(peer_config.name, "in_use"));
      peer.idle_gauge = &metrics_.agent_connections(peer_config.name, "idle");
      peer.up_gauge = &metrics_.agent_up(peer_config.name);
      it = peers_.emplace(peer_config.name, std::move(peer)).first;
    }
    Peer& peer = it->second;
    peer.config = peer_config;
    peer.configured = true;
    // A lowered max_idle: the oldest idle links beyond it go.
    while (peer.idle.size() > peer.config.max_idle) retire(peer, *peer.idle.front(), tunnel::ErrReason::kTooManyLinks);
    update(peer);
  }
  for (auto& [name, peer] : peers_) {
    if (names.count(name) != 0 || !peer.configured) continue;
    // SECURITY: a peer removed from the configuration loses its idle links at once (a
    // revoked agent must not keep receiving sessions); pipes already running go on.
    peer.configured = false;
    while (!peer.idle.empty()) retire(peer, *peer.idle.front(), tunnel::ErrReason::kUnknownAgent);
    fail_all(peer, HandoverFailure::kNotConnected, "agent " + name + " is not configured");
    update(peer);
  }
}

AgentHub::Peer* AgentHub::find(const std::string& agent) {
  auto it = peers_.find(agent);
  return it == peers_.end() ? nullptr : &it->second;
}
const AgentHub::Peer* AgentHub::find(const std::string& agent) const {
  auto it = peers_.find(agent);
  return it == peers_.end() ? nullptr : &it->second;
}

bool AgentHub::connected(const std::string& agent) const {
  const Peer* peer = find(agent);
  return peer != nullptr && peer->up;
}
std::size_t AgentHub::idle_links(const std::string& agent) const {
  const Peer* peer = find(agent);
  return peer == nullptr ? 0 : peer->idle.size();
}
std::size_t AgentHub::in_use_links(const std::string& agent) const {
  const Peer* peer = find(agent);
  return peer == nullptr ? 0 : peer->count->in_use.load();
}

std::size_t AgentHub::waiting_requests(const std::string& agent) const {
  const Peer* peer = find(agent);
  return peer == nullptr ? 0 : peer->waiting.size();
}

AgentHub::Adopted AgentHub::adopt(const std::string& agent, net::UniqueFd fd, tls::SslPtr ssl,
                                  const net::SocketAddress& address) {
  if (stopping_) {
    send_final_line(ssl.get(), tunnel::build_err(tunnel::ErrReason::kShuttingDown));
    return Adopted::kShuttingDown;
  }
  Peer* peer = find(agent);
  if (peer == nullptr || !peer->configured) {
    send_final_line(ssl.get(), tunnel::build_err(tunnel::ErrReason::kUnknownAgent));
    return Adopted::kUnknownAgent;
  }
  prune(*peer);
  const std::size_t links = peer->idle.size() + peer->count->in_use.load();
  // A waiting request takes the new link at once, so only max_links bounds it then.
  const bool wanted = !peer->waiting.empty();
  if (links >= peer->config.max_links || (!wanted && peer->idle.size() >= peer->config.max_idle)) {
    send_final_line(ssl.get(), tunnel::build_err(tunnel::ErrReason::kTooManyLinks));
    refusals_.refused("too_many_links", address.to_string(), "",
                      "agent " + agent + " already has " + std::to_string(peer->idle.size()) + " idle and " +
                          std::to_string(peer->count->in_use.load()) + " leased links (max_idle " +
                          std::to_string(peer->config.max_idle) + ", max_links " +
                          std::to_string(peer->config.max_links) + ")");
    return Adopted::kTooManyLinks;
  }
  auto link = std::make_unique<IdleLink>(base_, ++next_link_, agent, std::move(fd), std::move(ssl), address,
                                         keepalive_interval_, keepalive_timeout_, static_cast<IdleLink::Owner&>(*this));
  link->start();
  peer->idle.push_back(std::move(link));
  peer->idle_gauge->Set(static_cast<double>(peer->idle.size()));
  logger_.write(LogLevel::kDebug, "agent_link", {{"agent", agent}, {"peer", address.to_string()}});
  update(*peer);
  serve_waiting(*peer);
  return Adopted::kIdle;
}

void AgentHub::request(const std::string& agent, std::shared_ptr<LinkTicket> ticket, PostBack post_back) {
  auto job = [agent, ticket = std::move(ticket), post_back = std::move(post_back)](AgentHub& hub) mutable {
    hub.serve(agent, std::move(ticket), std::move(post_back));
  };
  // After the hub's end the request is dropped with the job: its requester times out.
  mailbox_->post(std::move(job));
}

void AgentHub::serve(const std::string& agent, std::shared_ptr<LinkTicket> ticket, PostBack post_back) {
  Waiting waiting{std::move(ticket), std::move(post_back)};
  if (waiting.ticket->cancelled.load()) return;
  if (stopping_) {
    fail(waiting, HandoverFailure::kShuttingDown, "agent " + agent + ": the gateway is shutting down");
    return;
  }
  Peer* peer = find(agent);
  // An agent with no link at all fails at once: its sessions get their 421 now, not after
  // the connect timeout.
  if (peer == nullptr || !peer->configured || (peer->idle.empty() && peer->count->in_use.load() == 0)) {
    fail(waiting, HandoverFailure::kNotConnected, "agent " + agent + " is not connected");
    return;
  }
  prune(*peer);
  if (peer->waiting.empty()) {
    if (IdleLink* link = pick(*peer)) {
      hand_over(*peer, *link, std::move(waiting));
      return;
    }
    // pick() may have found the last link dead.
    if (!peer->up) {
      fail(waiting, HandoverFailure::kNotConnected, "agent " + agent + " is not connected");
      return;
    }
  }
  if (peer->waiting.size() >= peer->config.max_waiting) {
    fail(waiting, HandoverFailure::kBusy,
         "agent " + agent + " has no idle link and " + std::to_string(peer->waiting.size()) +
             " requests already wait (max_waiting)");
    return;
  }
  peer->waiting.push_back(std::move(waiting));
}

void AgentHub::prune(Peer& peer) {
  const auto now = std::chrono::steady_clock::now();
  std::erase_if(peer.waiting,
                [now](const Waiting& w) { return w.ticket->cancelled.load() || w.ticket->deadline <= now; });
}

IdleLink* AgentHub::pick(Peer& peer) {
  std::set<uint64_t> tried;
  for (;;) {
    IdleLink* candidate = nullptr;
    for (const auto& link : peer.idle) {
      if (!link->lost() && !link->ping_outstanding() && tried.count(link->id()) == 0) {
        candidate = link.get();
        break;
      }
    }
    if (candidate == nullptr) return nullptr;
    tried.insert(candidate->id());
    // SECURITY: a link with bytes waiting (or closed by the agent) is never handed out:
    // those bytes would be taken for the start of the agent's reply. Reading them now
    // closes the link (nothing unsolicited is allowed) or finds only TLS housekeeping.
    if (candidate->quiet()) return candidate;
  }
}

void AgentHub::serve_waiting(Peer& peer) {
  prune(peer);
  while (!peer.waiting.empty()) {
    IdleLink* link = pick(peer);
    if (link == nullptr) return;
    Waiting waiting = std::move(peer.waiting.front());
    peer.waiting.pop_front();
    hand_over(peer, *link, std::move(waiting));
    prune(peer);
  }
}

std::unique_ptr<IdleLink> AgentHub::take(Peer& peer, IdleLink& link) {
  auto it = std::find_if(peer.idle.begin(), peer.idle.end(), [&](const auto& held) { return held.get() == &link; });
  if (it == peer.idle.end()) return nullptr;
  std::unique_ptr<IdleLink> owned = std::move(*it);
  peer.idle.erase(it);
  peer.idle_gauge->Set(static_cast<double>(peer.idle.size()));
  return owned;
}

void AgentHub::hand_over(Peer& peer, IdleLink& link, Waiting waiting) {
  auto owned = take(peer, link);
  auto released = link.release();
  // The link may be on the call stack (a PONG made it ready): freed from the loop.
  retired_.retire(std::move(owned));
  peer.count->in_use.fetch_add(1);
  peer.count->in_use_gauge.Increment();
  Handover handover;
  handover.fd = std::move(released.fd);
  handover.ssl = std::move(released.ssl);
  handover.lease = make_lease(peer);
  waiting.post_back(std::move(handover));
}

std::shared_ptr<void> AgentHub::make_lease(Peer& peer) { return std::make_shared<Lease>(peer.count, mailbox_); }

void AgentHub::lease_ended(const std::string& agent) {
  if (Peer* peer = find(agent)) update(*peer);
}

void AgentHub::retire(Peer& peer, IdleLink& link, tunnel::ErrReason reason) {
  auto owned = take(peer, link);
  link.close_with(reason);
  retired_.retire(std::move(owned));
}

void AgentHub::link_ready(IdleLink& link) {
  if (Peer* peer = find(link.agent())) serve_waiting(*peer);
}

void AgentHub::link_lost(IdleLink& link, const std::string& why) {
  Peer* peer = find(link.agent());
  if (peer == nullptr) return;
  logger_.write(LogLevel::kDebug, "agent_link_lost",
                {{"agent", link.agent()}, {"peer", link.peer().to_string()}, {"reason", why}});
  retired_.retire(take(*peer, link));
  update(*peer);
}

void AgentHub::fail(Waiting& waiting, HandoverFailure failure, std::string error) {
  Handover handover;
  handover.failure = failure;
  handover.error = std::move(error);
  PostBack post_back = std::move(waiting.post_back);
  if (post_back) post_back(std::move(handover));
}

void AgentHub::fail_all(Peer& peer, HandoverFailure failure, const std::string& error) {
  std::deque<Waiting> waiting;
  waiting.swap(peer.waiting);
  for (auto& w : waiting) {
    if (!w.ticket->cancelled.load()) fail(w, failure, error);
  }
}

void AgentHub::update(Peer& peer) {
  const std::size_t in_use = peer.count->in_use.load();
  const bool up = !peer.idle.empty() || in_use > 0;
  if (!up && !peer.waiting.empty()) {
    fail_all(peer, HandoverFailure::kNotConnected, "agent " + peer.config.name + " is not connected");
  }
  if (up == peer.up) return;
  peer.up = up;
  peer.up_gauge->Set(up ? 1 : 0);
  logger_.write(up ? LogLevel::kInfo : LogLevel::kWarn, up ? "agent_connected" : "agent_disconnected",
                {{"agent", peer.config.name}});
  if (transition_ && !stopping_) transition_(peer.config.name, up);
}

void AgentHub::shutdown() {
  if (stopping_) return;
  stopping_ = true;
  for (auto& [name, peer] : peers_) {
    while (!peer.idle.empty()) retire(peer, *peer.idle.front(), tunnel::ErrReason::kShuttingDown);
    fail_all(peer, HandoverFailure::kShuttingDown, "agent " + name + ": the gateway is shutting down");
    update(peer);
  }
}

}  // namespace ftpsgate::hub
