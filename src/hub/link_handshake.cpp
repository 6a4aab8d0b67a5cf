#include "hub/link_handshake.h"

#include <openssl/err.h>
#include <openssl/x509.h>

#include "tls/tls_errors.h"

namespace ftpsgate::hub {

LinkHandshake::LinkHandshake(event_base* base, net::UniqueFd fd, tls::SslPtr ssl, std::chrono::milliseconds timeout,
                             Done done)
    : fd_(std::move(fd)), ssl_(std::move(ssl)), done_(std::move(done)), timeout_after_(timeout), timeout_(base, [this] {
        complete(Outcome::kTimedOut, "agent link TLS handshake timed out");
      }) {
  SSL_set_fd(ssl_.get(), fd_.get());
  SSL_set_accept_state(ssl_.get());
  event_.reset(event_new(base, fd_.get(), EV_READ, &LinkHandshake::on_ready, this));
}

void LinkHandshake::start() {
  timeout_.arm(timeout_after_);
  step();
}

void LinkHandshake::on_ready(evutil_socket_t, short, void* self) { static_cast<LinkHandshake*>(self)->step(); }

void LinkHandshake::wait_for(short what) {
  event_del(event_.get());
  event_assign(event_.get(), event_get_base(event_.get()), fd_.get(), what, &LinkHandshake::on_ready, this);
  event_add(event_.get(), nullptr);
}

void LinkHandshake::step() {
  ERR_clear_error();
  const int r = SSL_do_handshake(ssl_.get());
  if (r == 1) {
    complete(Outcome::kDone, "");
    return;
  }
  switch (SSL_get_error(ssl_.get(), r)) {
    case SSL_ERROR_WANT_READ:
      wait_for(EV_READ);
      return;
    case SSL_ERROR_WANT_WRITE:
      wait_for(EV_WRITE);
      return;
    default: {
      std::string why = tls::drain_errors_or("connection closed");
      const long verify = SSL_get_verify_result(ssl_.get());
      if (verify != X509_V_OK) why += " (certificate: " + std::string(X509_verify_cert_error_string(verify)) + ")";
      complete(Outcome::kFailed, "agent link TLS handshake failed: " + why);
    }
  }
}

void LinkHandshake::complete(Outcome outcome, const std::string& error) {
  timeout_.cancel();
  event_.reset();
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
