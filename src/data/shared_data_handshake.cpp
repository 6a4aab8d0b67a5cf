#include "data/shared_data_handshake.h"

#include <openssl/err.h>

#include "tls/tls_errors.h"

namespace ftpsgate::data {

SharedDataHandshake::SharedDataHandshake(event_base* base, std::unique_ptr<SharedDataConnection> connection, SSL* ssl,
                                         std::chrono::milliseconds timeout, Done done)
    : connection_(std::move(connection)),
      done_(std::move(done)),
      timeout_after_(timeout),
      timeout_(base, [this] { complete("data connection TLS handshake timed out"); }) {
  connection_->ssl = ssl;
  SSL_set_fd(ssl, connection_->fd);
  SSL_set_accept_state(ssl);
  event_.reset(event_new(base, connection_->fd, EV_READ, &SharedDataHandshake::on_ready, this));
}

void SharedDataHandshake::start() {
  timeout_.arm(timeout_after_);
  step();
}

void SharedDataHandshake::on_ready(evutil_socket_t, short, void* self) { static_cast<SharedDataHandshake*>(self)->step(); }

void SharedDataHandshake::wait_for(short what) {
  event_del(event_.get());
  event_assign(event_.get(), event_get_base(event_.get()), connection_->fd, what, &SharedDataHandshake::on_ready, this);
  event_add(event_.get(), nullptr);
}

void SharedDataHandshake::step() {
  ERR_clear_error();
  const int r = SSL_do_handshake(connection_->ssl);
  if (r == 1) {
    complete("");
    return;
  }
  switch (SSL_get_error(connection_->ssl, r)) {
    case SSL_ERROR_WANT_READ:
      wait_for(EV_READ);
      return;
    case SSL_ERROR_WANT_WRITE:
      wait_for(EV_WRITE);
      return;
    default:
      complete("data connection TLS handshake failed: " + tls::drain_errors_or("connection closed"));
  }
}

void SharedDataHandshake::complete(const std::string& error) {
  timeout_.cancel();
  event_.reset();
  if (!error.empty() && connection_->ssl != nullptr) {
    SSL_free(connection_->ssl);
    connection_->ssl = nullptr;
  }
  // Moved out first: the callee may destroy this object.
  auto connection = std::move(connection_);
  Done done = std::move(done_);
  done(std::move(connection), error);
}

}  // namespace ftpsgate::data
