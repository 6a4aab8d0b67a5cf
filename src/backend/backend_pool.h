// A named pool of backend servers: resolution, health state, balance policy and the
// per-server session counts least_conn needs. Shared by every session of one Runtime
// (and, with workers, by several event loops), hence the atomics.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "ftpsgate/config.h"
#include "net/dialer.h"
#include "net/socket_address.h"
#include "policy/backend_balance.h"
#include "tls/client_context.h"

struct event_base;

namespace ftpsgate::log {
class Logger;
}
namespace ftpsgate::metrics {
class Metrics;
}

namespace ftpsgate::backend {

class HealthChecker;

struct Server {
  std::string name;  // as configured, "host:port" or "agent:NAME/host:port" (ServerConfig::to_string)
  std::string host;  // the host part: TLS server name / IP to verify
  net::DialTarget target;  // purpose and session are set per use (DialTarget::for_use)
  // Ask EPSV rather than PASV: PASV cannot name an IPv6 data endpoint.
  bool prefers_epsv() const;
  std::atomic<policy::ServerHealth> health{policy::ServerHealth::kUnknown};
  std::atomic<uint32_t> active_sessions{0};
};

class BackendPool {
 public:
  // Counts one session on a server for as long as it lives (least_conn).
  class Lease {
   public:
    Lease() = default;
    explicit Lease(Server* server) : server_(server) { server_->active_sessions.fetch_add(1); }
    Lease(Lease&& other) noexcept : server_(other.server_) { other.server_ = nullptr; }
    Lease& operator=(Lease&& other) noexcept;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() { release(); }

   private:
    void release();
    Server* server_ = nullptr;
  };

  // Resolves server names once (start-up / reload); unresolvable ones go to `errors`.
  BackendPool(const BackendConfig& config, std::vector<std::string>& errors);
  ~BackendPool();

  const std::string& name() const { return config_.name; }
  const BackendConfig& config() const { return config_; }
  // The TLS client side when backends[].tls is explicit or implicit, else nullptr.
  const tls::ClientContext* tls() const { return tls_.get(); }
  // Servers to try for one new session, best first; empty when none is healthy.
  std::vector<Server*> connect_order(std::string_view client_ip, std::string_view user);
  Lease lease(Server& server) { return Lease(&server); }
  bool any_up() const;

  // Health state from a probe or from a session's own connect attempt; logs transitions
  // and keeps ftpsgate_backend_up current (once the observers are attached).
  void report(Server& server, bool up, std::string_view why);

  // What a server's FEAT announced (relayable features only), from a health check or a
  // session; and what every server of the pool has in common (a FEAT before login; empty
  // until each server has answered once).
  void learn_features(const Server& server, std::vector<std::string> features);
  std::vector<std::string> common_features() const;

  // Periodic greeting checks (health_check.interval/timeout) on `base`, first one at once,
  // each connection made by `dialer` (which outlives the checks).
  void start_health_checks(event_base* base, net::Dialer& dialer, metrics::Metrics& metrics, log::Logger& logger);
  void stop_health_checks();
  // Probes every server now (main loop, once checks run): an agent's first link is back.
  void check_now();
  // The servers reached through `agent` (their health follows its links).
  std::vector<Server*> servers_of_agent(const std::string& agent);

 private:
  BackendConfig config_;
  std::vector<std::unique_ptr<Server>> servers_;
  std::unique_ptr<tls::ClientContext> tls_;
  std::atomic<std::size_t> round_robin_{0};
  std::atomic<metrics::Metrics*> metrics_{nullptr};
  std::atomic<log::Logger*> logger_{nullptr};
  std::unique_ptr<HealthChecker> checker_;
  event_base* check_base_ = nullptr;   // as given to start_health_checks
  net::Dialer* check_dialer_ = nullptr;
  mutable std::mutex features_mutex_;  // sessions of several workers and the health checker
  std::map<const Server*, std::vector<std::string>> features_;
  friend class HealthChecker;
};

}  // namespace ftpsgate::backend
