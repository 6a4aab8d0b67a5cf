// The TLS handshake of a new agent link on the main loop (tls::ServerHandshake): nothing
// is buffered outside the SSL when it ends, so the link can become an IdleLink and later
// move to a worker as it is.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "net/unique_fd.h"
#include "tls/openssl_handles.h"
#include "tls/server_handshake.h"

namespace ftpsgate::hub {

class LinkHandshake {
 public:
  using Outcome = tls::ServerHandshake::Outcome;
  // Called once, from the loop; the handshake object may be destroyed from inside. On
  // kDone, `ssl` is established on `fd`; otherwise both are gone (closed).
  using Done = std::function<void(Outcome outcome, net::UniqueFd fd, tls::SslPtr ssl, const std::string& error)>;

  // `ssl` fresh, server side; nothing happens before start().
  LinkHandshake(event_base* base, net::UniqueFd fd, tls::SslPtr ssl, std::chrono::milliseconds timeout, Done done);
  // May complete (and call `done`) at once.
  void start() { handshake_.start(); }
  LinkHandshake(const LinkHandshake&) = delete;
  LinkHandshake& operator=(const LinkHandshake&) = delete;

 private:
  void complete(Outcome outcome, const std::string& error);

  net::UniqueFd fd_;
  tls::SslPtr ssl_;
  Done done_;
  tls::ServerHandshake handshake_;  // after what it points to
};

}  // namespace ftpsgate::hub
