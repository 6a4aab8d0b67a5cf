// tls::start_tls, the one AUTH TLS swap (no network; socketpairs, a real event loop).
#include <doctest/doctest.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/unique_fd.h"
#include "tls/starttls.h"

using namespace ftpsgate;

namespace {

struct Pair {
  net::EventBasePtr base{event_base_new()};
  tls::SslCtxPtr ctx{SSL_CTX_new(TLS_server_method())};
  int fds[2] = {-1, -1};
  Pair() {
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
    evutil_make_socket_nonblocking(fds[0]);
  }
  ~Pair() {
    for (int fd : fds)
      if (fd >= 0 && fcntl(fd, F_GETFD) != -1) close(fd);
  }
  // A clear bufferevent on fds[0] that has read whatever the peer sent.
  net::BufferEventPtr clear_with_input(const std::string& peer_sends, int options) {
    net::BufferEventPtr bev(bufferevent_socket_new(base.get(), fds[0], options));
    bufferevent_enable(bev.get(), EV_READ);
    if (!peer_sends.empty()) {
      REQUIRE(write(fds[1], peer_sends.data(), peer_sends.size()) == static_cast<ssize_t>(peer_sends.size()));
      event_base_loop(base.get(), EVLOOP_NONBLOCK);
      event_base_loop(base.get(), EVLOOP_NONBLOCK);
    }
    return bev;
  }
};

bool is_open(int fd) { return fcntl(fd, F_GETFD) != -1; }

}  // namespace

TEST_CASE("start_tls refuses while plaintext the peer pipelined is still buffered (STARTTLS injection)") {
  Pair p;
  auto bev = p.clear_with_input("USER injected\r\n", 0);
  REQUIRE(evbuffer_get_length(bufferevent_get_input(bev.get())) > 0);
  tls::SslPtr ssl(SSL_new(p.ctx.get()));
  bufferevent* before = bev.get();
  CHECK(tls::start_tls(p.base.get(), bev, p.fds[0], ssl.get(), BUFFEREVENT_SSL_ACCEPTING, false) ==
        tls::StartTlsResult::kPlaintextBuffered);
  CHECK(bev.get() == before);  // untouched: the caller closes the connection
}

TEST_CASE("start_tls refuses when the caller's line reader holds unread plaintext") {
  Pair p;
  auto bev = p.clear_with_input("", 0);
  tls::SslPtr ssl(SSL_new(p.ctx.get()));
  CHECK(tls::start_tls(p.base.get(), bev, p.fds[0], ssl.get(), BUFFEREVENT_SSL_ACCEPTING, true) ==
        tls::StartTlsResult::kPlaintextBuffered);
}

TEST_CASE("start_tls with the caller keeping SSL and descriptor leaves both to the caller") {
  Pair p;
  auto bev = p.clear_with_input("", 0);
  tls::SslPtr ssl(SSL_new(p.ctx.get()));
  CHECK(tls::start_tls(p.base.get(), bev, p.fds[0], ssl.get(), BUFFEREVENT_SSL_ACCEPTING, false) ==
        tls::StartTlsResult::kStarted);
  REQUIRE(bev);
  bev.reset();
  event_base_loop(p.base.get(), EVLOOP_NONBLOCK);
  CHECK(is_open(p.fds[0]));  // CCC returns to clear on the same descriptor
  CHECK(ssl);                // still ours to free (AddressSanitizer would see a double free otherwise)
}

TEST_CASE("start_tls with the bufferevent owning SSL and descriptor closes the descriptor with it") {
  Pair p;
  auto bev = p.clear_with_input("", BEV_OPT_CLOSE_ON_FREE);
  tls::SslPtr ssl(SSL_new(p.ctx.get()));
  CHECK(tls::start_tls(p.base.get(), bev, p.fds[0], std::move(ssl), BUFFEREVENT_SSL_CONNECTING, false) ==
        tls::StartTlsResult::kStarted);
  REQUIRE(bev);
  CHECK(is_open(p.fds[0]));  // the clear bufferevent let go of it
  bev.reset();
  event_base_loop(p.base.get(), EVLOOP_NONBLOCK);  // libevent 2.1 finalizes bufferevents from the loop
  CHECK_FALSE(is_open(p.fds[0]));
}

TEST_CASE("UniqueFd closes its descriptor once, and not after release") {
  int fds[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
  {
    net::UniqueFd owned(fds[0]);
    CHECK(owned);
    net::UniqueFd moved(std::move(owned));
    CHECK_FALSE(owned);
    CHECK(moved.get() == fds[0]);
  }
  CHECK_FALSE(is_open(fds[0]));
  int kept = -1;
  {
    net::UniqueFd owned(fds[1]);
    kept = owned.release();
  }
  CHECK(is_open(kept));
  close(kept);
}
