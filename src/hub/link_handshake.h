// The TLS handshake of a new agent link on the main loop, with raw events (modelled on
// data::SharedDataHandshake): nothing is buffered outside the SSL when it ends, so the link
// can become an IdleLink and later move to a worker as it is.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "net/libevent_handles.h"
#include "net/timer.h"
#include "net/unique_fd.h"
#include "tls/openssl_handles.h"

namespace ftpsgate::hub {

class LinkHandshake {
 public:
  enum class Outcome { kDone, kFailed, kTimedOut };
  // Called once, from the loop; the handshake object may be destroyed from inside. On
  // kDone, `ssl` is established on `fd`; otherwise both are gone (closed).
  using Done = std::function<void(Outcome outcome, net::UniqueFd fd, tls::SslPtr ssl, const std::string& error)>;

  // `ssl` fresh, server side; nothing happens before start().
  LinkHandshake(event_base* base, net::UniqueFd fd, tls::SslPtr ssl, std::chrono::milliseconds timeout, Done done);
  // May complete (and call `done`) at once.
  void start();
  LinkHandshake(const LinkHandshake&) = delete;
  LinkHandshake& operator=(const LinkHandshake&) = delete;

 private:
  static void on_ready(evutil_socket_t fd, short what, void* self);
  void step();
  void wait_for(short what);
  void complete(Outcome outcome, const std::string& error);

  net::UniqueFd fd_;
  tls::SslPtr ssl_;
  Done done_;
  std::chrono::milliseconds timeout_after_;
  net::Timer timeout_;
  net::EventPtr event_;
};

}  // namespace ftpsgate::hub
