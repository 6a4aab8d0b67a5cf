// Ownership rules of the I/O layer's libevent/OpenSSL wrappers (no network; socketpairs).
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tls/tls_bufferevent.h"

using namespace ftpsgate;

namespace {
struct Fixture {
  net::EventBasePtr base{event_base_new()};
  tls::SslCtxPtr ctx{SSL_CTX_new(TLS_server_method())};
  int fds[2] = {-1, -1};
  Fixture() { REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0); }
  ~Fixture() {
    for (int fd : fds)
      if (fd >= 0 && fcntl(fd, F_GETFD) != -1) close(fd);
  }
};
bool is_open(int fd) { return fcntl(fd, F_GETFD) != -1; }
}  // namespace

TEST_CASE("a TLS bufferevent that cannot be made frees its SSL exactly once and closes its descriptor") {
  Fixture f;
  tls::SslPtr ssl(SSL_new(f.ctx.get()));
  REQUIRE(ssl);
  // The SSL already names another descriptor: libevent 2.1 refuses, and frees the SSL.
  REQUIRE(SSL_set_fd(ssl.get(), f.fds[0]) == 1);
  auto bev = tls::make_tls_bufferevent(f.base.get(), f.fds[1], std::move(ssl), BUFFEREVENT_SSL_ACCEPTING);
  CHECK(!bev);
  CHECK(!ssl);                    // nothing left for the caller to free (AddressSanitizer sees a double free)
  CHECK_FALSE(is_open(f.fds[1]));  // the descriptor went with it, not leaked
  CHECK(is_open(f.fds[0]));
}

TEST_CASE("a TLS bufferevent owns its SSL and descriptor") {
  Fixture f;
  tls::SslPtr ssl(SSL_new(f.ctx.get()));
  REQUIRE(ssl);
  auto bev = tls::make_tls_bufferevent(f.base.get(), f.fds[1], std::move(ssl), BUFFEREVENT_SSL_ACCEPTING);
  REQUIRE(bev);
  CHECK(bufferevent_openssl_get_ssl(bev.get()) != nullptr);
  CHECK(is_open(f.fds[1]));
  bev.reset();
  event_base_loop(f.base.get(), EVLOOP_NONBLOCK);  // libevent 2.1 finalizes bufferevents from the loop
  CHECK_FALSE(is_open(f.fds[1]));
}
