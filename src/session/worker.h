// One event loop on its own thread that runs the control sessions the acceptor hands it,
// with their upstream connections and data channels: a session's control and data stay on
// one worker, so nothing inside a session needs locking.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "data/shared_data_handshake.h"
#include "net/libevent_handles.h"
#include "net/unique_fd.h"
#include "net/deferred_delete.h"
#include "policy/refusal.h"
#include "session/control_session.h"
#include "session/runtime.h"
#include "session/session_limits.h"

namespace ftpsgate::session {

// What the acceptor decided about a new connection; owns the socket until adopted.
struct Handoff {
  std::shared_ptr<Runtime> runtime;
  std::size_t listener_index = 0;
  const ClassConfig* cls = nullptr;  // points into runtime->config
  uint64_t id = 0;
  net::UniqueFd fd;  // closed if the hand-over never runs
  net::SocketAddress client;
  net::SocketAddress local;
  net::SocketAddress advertised;
};

class Worker {
 public:
  // `shared` holds the process-wide services; the worker puts its own event base in.
  Worker(unsigned index, const Services& shared, SessionLimits& limits);
  ~Worker();  // stop(), then frees what is left
  // Ends its sessions on the loop, stops the loop and joins the thread. Other threads may
  // still post() afterwards: those jobs are dropped (and their sockets closed) with it.
  void stop();
  // Drain deadline: every session gets its 421 and a clean close, on the loop.
  void say_goodbye();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Thread-safe: the worker adopts the connection on its own loop.
  void hand_over(Handoff handoff);
  // Thread-safe: runs `job` on the loop with the session, unless it has gone meanwhile.
  void for_session(uint64_t id, std::function<void(ControlSession&)> job);
  // Thread-safe: a shared passive port's connection that is not clear data: its TLS
  // handshake here, then on to its session (on this worker or another).
  void handshake_shared(std::unique_ptr<data::SharedDataConnection> connection, std::shared_ptr<Runtime> runtime);
  std::size_t session_count() const { return session_count_.load(); }
  unsigned index() const { return index_; }

 private:
  void post(std::function<void()> job);
  static void on_wakeup(evutil_socket_t, short, void* self);
  void run();
  void adopt(Handoff& handoff);
  void retire(uint64_t id);
  void shared_handshake_done(uint64_t key, std::unique_ptr<data::SharedDataConnection> connection,
                             const std::string& error);
  // reason nullopt: not a policy refusal, logged as data_error.
  void refuse_shared(const data::SharedDataConnection& connection, std::optional<policy::Refusal> reason,
                     std::string_view message);

  unsigned index_;
  SessionLimits& limits_;
  net::EventBasePtr base_;
  // Scanners outlive nothing but the loop: sessions' scans hold them shared.
  std::unique_ptr<inspection::ScannerSet> scanners_;
  Services services_;
  net::EventPtr wakeup_;
  std::mutex jobs_mutex_;
  std::deque<std::function<void()>> jobs_;
  std::atomic<std::size_t> session_count_{0};
  // Loop-thread state: sessions and the ones retired from inside their own callbacks.
  std::unordered_map<uint64_t, std::unique_ptr<ControlSession>> sessions_;
  std::unique_ptr<net::DeferredDelete<ControlSession>> retired_;
  std::unordered_map<uint64_t, std::unique_ptr<data::SharedDataHandshake>> handshakes_;
  std::unique_ptr<net::DeferredDelete<data::SharedDataHandshake>> retired_handshakes_;
  uint64_t next_handshake_ = 0;
  std::thread thread_;
};

}  // namespace ftpsgate::session
