// The acceptor on the main event loop: listeners, PROXY headers, classes, bans and
// session limits; admitted connections go to the workers, which run the sessions. Holds
// the current Runtime (swapped on reload) and the health checks.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "net/proxy_header_reader.h"
#include "session/control_session.h"
#include "session/runtime.h"
#include "session/session_limits.h"
#include "session/worker.h"

namespace ftpsgate::session {

// Builds a Runtime (TLS context, backend pools) from a loaded Config; used by start-up,
// --check and reload alike.
std::shared_ptr<Runtime> build_runtime(const Config& config, std::vector<std::string>& errors,
                                       std::vector<std::string>& warnings);

class Gateway {
 public:
  // `workers`: event-loop threads running the sessions (at least one).
  static std::unique_ptr<Gateway> create(const Services& services, std::shared_ptr<Runtime> runtime,
                                         unsigned workers, std::string& error);
  ~Gateway();

  void replace_runtime(std::shared_ptr<Runtime> runtime);
  const Runtime& runtime() const { return *runtime_; }
  void stop_accepting();
  std::size_t session_count() const { return limits_.total(); }
  std::size_t worker_count() const { return workers_.size(); }

 private:
  struct ListenerSlot {
    Gateway* gateway = nullptr;
    std::size_t index = 0;
    net::ListenerPtr listener;
  };

  Gateway(const Services& services, std::shared_ptr<Runtime> runtime);
  static void on_accept(evconnlistener*, evutil_socket_t fd, sockaddr* sa, int len, void* slot);
  void accept(std::size_t listener_index, evutil_socket_t fd, const sockaddr* sa, int len);
  // After the PROXY header (if any): class, bans and limits, then the session.
  void admit(std::size_t listener_index, evutil_socket_t fd, const net::SocketAddress& client,
             const net::SocketAddress& local, const net::SocketAddress& advertised);
  void refuse_connection(evutil_socket_t fd, const net::SocketAddress& client, std::string_view reason,
                         std::string_view text);
  void start_health_checks(Runtime& runtime);

  policy::LoginThrottle login_throttle_;
  Services services_;
  std::shared_ptr<Runtime> runtime_;
  std::vector<std::unique_ptr<ListenerSlot>> listeners_;
  SessionLimits limits_;
  std::vector<std::unique_ptr<Worker>> workers_;  // after limits_: sessions release into it
  std::size_t next_worker_ = 0;
  std::unordered_map<uint64_t, std::unique_ptr<net::ProxyHeaderReader>> proxy_readers_;
  std::vector<std::unique_ptr<net::ProxyHeaderReader>> retired_readers_;
  net::Timer reaper_;
  uint64_t next_id_ = 1;
};

}  // namespace ftpsgate::session
