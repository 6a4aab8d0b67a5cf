#include "data/shared_data_handshake.h"

namespace ftpsgate::data {

namespace {
// The connection's fields are set before the handshake object that uses them.
SSL* adopt(SharedDataConnection& connection, SSL* ssl) {
  connection.ssl = ssl;
  return ssl;
}
}  // namespace

SharedDataHandshake::SharedDataHandshake(event_base* base, std::unique_ptr<SharedDataConnection> connection, SSL* ssl,
                                         std::chrono::milliseconds timeout, Done done)
    : connection_(std::move(connection)),
      done_(std::move(done)),
      handshake_(base, connection_->fd, adopt(*connection_, ssl), timeout, "data connection TLS handshake",
                 [this](tls::ServerHandshake::Outcome outcome, const std::string& error) { complete(outcome, error); }) {}

void SharedDataHandshake::complete(tls::ServerHandshake::Outcome outcome, const std::string& error) {
  if (outcome != tls::ServerHandshake::Outcome::kDone && connection_->ssl != nullptr) {
    SSL_free(connection_->ssl);
    connection_->ssl = nullptr;
  }
  // Moved out first: the callee may destroy this object.
  auto connection = std::move(connection_);
  Done done = std::move(done_);
  done(std::move(connection), error);
}

}  // namespace ftpsgate::data
