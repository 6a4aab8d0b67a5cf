// The acceptor on the main event loop: listeners, PROXY headers, classes, bans and
// session limits; admitted connections go to the workers, which run the sessions. Holds
// the current Runtime (swapped on reload) and the health checks.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "auth/auth_pool.h"
#include "net/deferred_delete.h"
#include "policy/refusal.h"
#include "net/proxy_header_reader.h"
#include "session/control_session.h"
#include "session/runtime.h"
#include "session/session_limits.h"
#include "session/worker.h"
#include "tls/session_cache.h"
#include "tls/ticket_keys.h"

namespace ftpsgate::session {

// Builds a Runtime (TLS context, backend pools) from a loaded Config; used by start-up,
// --check and reload alike.
std::shared_ptr<Runtime> build_runtime(const Config& config, std::vector<std::string>& errors,
                                       std::vector<std::string>& warnings);

class Acceptor final : private data::SharedPortRouter {
 public:
  // `workers`: event-loop threads running the sessions (at least one).
  static std::unique_ptr<Acceptor> create(const Services& services, std::shared_ptr<Runtime> runtime,
                                         unsigned workers, std::string& error);
  ~Acceptor();
  Acceptor(const Acceptor&) = delete;
  Acceptor& operator=(const Acceptor&) = delete;

  void replace_runtime(std::shared_ptr<Runtime> runtime);
  const Runtime& runtime() const { return *runtime_; }
  void stop_accepting();
  // The drain deadline passed: sessions close with 421 and close_notify (asynchronously).
  void say_goodbye();
  // Why `next` cannot replace the running config without a restart (listener sockets or
  // passive ports would change), or nullopt. Such a reload is refused as a whole.
  std::optional<std::string> reload_conflict(const Config& next) const;
  std::size_t session_count() const { return limits_.total(); }
  std::size_t worker_count() const { return workers_.size(); }

 private:
  // SECURITY: a socket keeps its listener by name; a reload never hands one listener's
  // settings (e.g. proxy_protocol) to another's socket.
  struct ListenerSlot {
    Acceptor* acceptor = nullptr;
    std::string name;
    net::ListenerPtr listener;
  };

  // passive.shared_port: one listener per shared port and listener address.
  struct SharedSlot {
    Acceptor* acceptor = nullptr;
    uint16_t port = 0;
    std::vector<std::string> listeners;  // whose control addresses this port serves
    net::ListenerPtr listener;
  };
  using AfterHeader = std::function<void(net::UniqueFd fd, const net::ProxyHeaderReader::Result& result)>;

  Acceptor(const Services& services, std::shared_ptr<Runtime> runtime);
  static void on_accept(evconnlistener*, evutil_socket_t fd, sockaddr* sa, int len, void* slot);
  void accept(const std::string& listener, net::UniqueFd fd, const sockaddr* sa, int len);
  // SECURITY: a PROXY header is read only from the listener's proxy_protocol_from.
  bool trusted_balancer(const ListenerConfig& listener, const net::SocketAddress& peer) const;
  // Reads a PROXY protocol header, then calls `then` (not on failure, which is counted).
  void read_proxy_header(net::UniqueFd fd, const net::SocketAddress& peer, const net::SocketAddress& local,
                         AfterHeader then);
  bool bind_shared_ports(std::string& error);
  static void on_shared_accept(evconnlistener*, evutil_socket_t fd, sockaddr* sa, int len, void* slot);
  void accept_shared(const SharedSlot& slot, net::UniqueFd fd, const sockaddr* sa, int len);
  // Clear data of a waiting clear transfer goes to its session; anything else is TLS.
  void dispatch_shared(net::UniqueFd fd, const net::SocketAddress& client, uint16_t port);
  // data::SharedPortRouter
  void port_granted(const data::ShareOwner& owner, uint64_t reservation, uint16_t port) override;
  void deliver(const data::ShareOwner& owner, uint64_t reservation,
               std::unique_ptr<data::SharedDataConnection> connection) override;
  // After the PROXY header (if any): class, bans and limits, then the session.
  void admit(const std::string& listener, net::UniqueFd fd, const net::SocketAddress& client,
             const net::SocketAddress& local, const net::SocketAddress& advertised);
  void refuse_connection(net::UniqueFd fd, const net::SocketAddress& client, policy::Refusal reason);
  void start_health_checks(Runtime& runtime);

  policy::LoginThrottle login_throttle_;
  data::BandwidthRegistry bandwidth_;  // user and class buckets, shared by every worker
  inspection::SpoolBudget spool_budget_{0};  // inspection.max_spool_bytes, across workers
  std::unique_ptr<auth::AuthPool> auth_pool_;  // stopped before the workers it reports to
  Services services_;
  // passive.shared_port without tls.ticket_key_file: one ticket key for every runtime, so
  // sessions opened before a reload still resume on the shared port. Outlives runtime_.
  std::unique_ptr<tls::TicketKeys> shared_ticket_keys_;
  // ... and one session cache, for TLS 1.2 clients resuming by session ID.
  std::unique_ptr<tls::SessionCache> shared_session_cache_;
  std::shared_ptr<Runtime> runtime_;
  std::vector<std::unique_ptr<ListenerSlot>> listeners_;
  SessionLimits limits_;
  // TLS handshakes in flight on the shared data ports, bounded like sessions.
  SessionLimits shared_handshakes_;
  std::unique_ptr<data::SharedPassivePort> shared_port_;  // before workers_: their sessions release into it
  std::vector<std::unique_ptr<SharedSlot>> shared_listeners_;
  std::vector<std::unique_ptr<Worker>> workers_;  // after limits_: sessions release into it
  std::size_t next_worker_ = 0;
  std::size_t next_handshake_worker_ = 0;
  std::atomic<bool> routing_{true};  // off while the workers are torn down
  std::unordered_map<uint64_t, std::unique_ptr<net::ProxyHeaderReader>> proxy_readers_;
  net::DeferredDelete<net::ProxyHeaderReader> retired_readers_;
  uint64_t next_id_ = 1;
};

}  // namespace ftpsgate::session
