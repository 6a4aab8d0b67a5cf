// The TLS handshake of a data connection that arrived on a shared passive port, run on
// whichever worker got it, before anyone knows which session it belongs to: only the
// resumed session says that.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "data/shared_passive_port.h"
#include "tls/server_handshake.h"

namespace ftpsgate::data {

class SharedDataHandshake {
 public:
  // Called once, from the loop; `error` is empty on success (connection->ssl is then
  // established). The handshake object may be destroyed from inside.
  using Done = std::function<void(std::unique_ptr<SharedDataConnection> connection, const std::string& error)>;

  // Takes `ssl` (fresh, server side) and the connection; nothing happens before start().
  SharedDataHandshake(event_base* base, std::unique_ptr<SharedDataConnection> connection, SSL* ssl,
                      std::chrono::milliseconds timeout, Done done);
  // May complete (and call `done`) at once, when the peer's bytes are already there.
  void start() { handshake_.start(); }
  SharedDataHandshake(const SharedDataHandshake&) = delete;
  SharedDataHandshake& operator=(const SharedDataHandshake&) = delete;

 private:
  void complete(tls::ServerHandshake::Outcome outcome, const std::string& error);

  std::unique_ptr<SharedDataConnection> connection_;
  Done done_;
  tls::ServerHandshake handshake_;  // after the connection it works on
};

}  // namespace ftpsgate::data
