#include "hub/link_handshake.h"

namespace ftpsgate::hub {

LinkHandshake::LinkHandshake(event_base* base, net::UniqueFd fd, tls::SslPtr ssl, std::chrono::milliseconds timeout,
                             Done done)
    : fd_(std::move(fd)),
      ssl_(std::move(ssl)),
      done_(std::move(done)),
      handshake_(base, fd_.get(), ssl_.get(), timeout, "agent link TLS handshake",
                 [this](Outcome outcome, const std::string& error) { complete(outcome, error); }) {}

void LinkHandshake::complete(Outcome outcome, const std::string& error) {
  if (outcome != Outcome::kDone) {
    ssl_.reset();
    fd_.reset();
  }
  // Moved out first: the callee may destroy this object.
  auto fd = std::move(fd_);
  auto ssl = std::move(ssl_);
  Done done = std::move(done_);
  done(outcome, std::move(fd), std::move(ssl), error);
}

}  // namespace ftpsgate::hub
