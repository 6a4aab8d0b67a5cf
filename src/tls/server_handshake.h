// A server-side TLS handshake on a bare socket with raw events and a timeout, for
// connections that must come out of it with nothing buffered outside the SSL (an agent link
// that later moves to another loop, a shared-port data connection whose session only the
// resumed TLS session names). The caller owns the socket and the SSL.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "net/libevent_handles.h"
#include "net/timer.h"
#include "tls/openssl_handles.h"

namespace ftpsgate::tls {

class ServerHandshake {
 public:
  enum class Outcome { kDone, kFailed, kTimedOut };
  // Called once, from the loop, with `what` leading the error ("agent link TLS handshake
  // failed: ..."); this object may be destroyed from inside.
  using Done = std::function<void(Outcome outcome, const std::string& error)>;

  // `ssl` fresh, server side, is set on `fd`; nothing happens before start().
  ServerHandshake(event_base* base, evutil_socket_t fd, SSL* ssl, std::chrono::milliseconds timeout,
                  std::string what, Done done);
  // May complete (and call `done`) at once, when the peer's bytes are already there.
  void start();
  ServerHandshake(const ServerHandshake&) = delete;
  ServerHandshake& operator=(const ServerHandshake&) = delete;

 private:
  static void on_ready(evutil_socket_t fd, short events, void* self);
  void step();
  void wait_for(short events);
  void complete(Outcome outcome, const std::string& error);

  evutil_socket_t fd_;
  SSL* ssl_;
  std::string what_;
  Done done_;
  std::chrono::milliseconds timeout_after_;
  net::Timer timeout_;
  net::EventPtr event_;
};

}  // namespace ftpsgate::tls
