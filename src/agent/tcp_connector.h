// One outgoing TCP connection of the agent, to a gateway or a target: an IP literal is used
// as it is (never resolved), a DNS name goes through evdns (never the blocking getaddrinfo
// on the loop) and its answers are tried in order, all within one timeout.
#pragma once

#include <event2/util.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "net/libevent_handles.h"
#include "net/socket_address.h"
#include "net/timer.h"
#include "net/unique_fd.h"

struct evdns_base;
struct evdns_getaddrinfo_request;

namespace ftpsgate::agent {

// evdns_getaddrinfo for TCP addresses of `host` (IPv4 and IPv6, as configured locally). May
// answer at once: then `done` has run and it returns nullptr.
evdns_getaddrinfo_request* lookup_stream_addresses(evdns_base* dns, const std::string& host,
                                                   void (*done)(int, evutil_addrinfo*, void*), void* arg);
// What `done` got, as addresses (those that convert, in order; port as answered), and the
// list freed. Every `done` passes its answers here, a cancelled one included.
std::vector<net::SocketAddress> take_answers(evutil_addrinfo* answers);

class TcpConnector {
 public:
  enum class Failure { kNone, kResolveFailed, kConnectFailed, kConnectTimeout };
  // Once, from the loop (never inside start()); `fd` is connected and non-blocking on success.
  using Done = std::function<void(net::UniqueFd fd, Failure failure, const std::string& detail)>;

  // `abortive`: SO_LINGER {1,0} from the socket's creation (targets, docs/agent-design.md 1.3).
  TcpConnector(event_base* base, evdns_base* dns, std::string host, uint16_t port, std::chrono::milliseconds timeout,
               bool abortive, Done done);
  // Cancels: `done` never runs afterwards.
  ~TcpConnector();
  TcpConnector(const TcpConnector&) = delete;
  TcpConnector& operator=(const TcpConnector&) = delete;

  void start();

 private:
  static void on_resolved(int result, evutil_addrinfo* answers, void* self);
  static void on_writable(evutil_socket_t fd, short what, void* self);
  void begin();
  void try_next();
  void finish(net::UniqueFd fd, Failure failure, const std::string& detail);

  event_base* base_;
  evdns_base* dns_;
  std::string host_;
  uint16_t port_;
  std::chrono::milliseconds timeout_;
  bool abortive_;
  Done done_;
  std::vector<net::SocketAddress> addresses_;
  std::size_t next_ = 0;
  std::string last_error_;
  net::UniqueFd fd_;
  net::EventPtr writable_;
  evdns_getaddrinfo_request* resolving_ = nullptr;
  bool finished_ = false;
  net::UniqueFd result_fd_;
  Failure result_ = Failure::kNone;
  std::string result_detail_;
  net::Timer start_timer_;   // start() defers to the loop
  net::Timer report_timer_;  // so does done_ (it may destroy us)
  net::Timer timeout_timer_;
};

std::string_view failure_name(TcpConnector::Failure failure);

}  // namespace ftpsgate::agent
