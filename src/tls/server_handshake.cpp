#include "tls/server_handshake.h"

#include <openssl/err.h>
#include <openssl/x509.h>

#include "tls/tls_errors.h"

namespace ftpsgate::tls {

ServerHandshake::ServerHandshake(event_base* base, evutil_socket_t fd, SSL* ssl, std::chrono::milliseconds timeout,
                                 std::string what, Done done)
    : fd_(fd),
      ssl_(ssl),
      what_(std::move(what)),
      done_(std::move(done)),
      timeout_after_(timeout),
      timeout_(base, [this] { complete(Outcome::kTimedOut, what_ + " timed out"); }) {
  SSL_set_fd(ssl_, static_cast<int>(fd_));
  SSL_set_accept_state(ssl_);
  event_.reset(event_new(base, fd_, EV_READ, &ServerHandshake::on_ready, this));
}

void ServerHandshake::start() {
  timeout_.arm(timeout_after_);
  step();
}

void ServerHandshake::on_ready(evutil_socket_t, short, void* self) { static_cast<ServerHandshake*>(self)->step(); }

void ServerHandshake::wait_for(short events) {
  event_del(event_.get());
  event_assign(event_.get(), event_get_base(event_.get()), fd_, events, &ServerHandshake::on_ready, this);
  event_add(event_.get(), nullptr);
}

void ServerHandshake::step() {
  ERR_clear_error();
  const int r = SSL_do_handshake(ssl_);
  if (r == 1) {
    complete(Outcome::kDone, "");
    return;
  }
  switch (SSL_get_error(ssl_, r)) {
    case SSL_ERROR_WANT_READ:
      wait_for(EV_READ);
      return;
    case SSL_ERROR_WANT_WRITE:
      wait_for(EV_WRITE);
      return;
    default: {
      std::string why = drain_errors_or("connection closed");
      const long verify = SSL_get_verify_result(ssl_);
      if (verify != X509_V_OK) why += " (certificate: " + std::string(X509_verify_cert_error_string(verify)) + ")";
      complete(Outcome::kFailed, what_ + " failed: " + why);
    }
  }
}

void ServerHandshake::complete(Outcome outcome, const std::string& error) {
  timeout_.cancel();
  event_.reset();
  // Moved out first: the callee may destroy this object.
  Done done = std::move(done_);
  done(outcome, error);
}

}  // namespace ftpsgate::tls
