#include "tls/tls_bufferevent.h"

#include "tls/tls_errors.h"

namespace ftpsgate::tls {

net::BufferEventPtr make_tls_bufferevent(event_base* base, evutil_socket_t fd, SslPtr ssl,
                                         bufferevent_ssl_state state) {
  // Released before the call: from here libevent owns the SSL, also when it fails.
  net::BufferEventPtr bev(bufferevent_openssl_socket_new(base, fd, ssl.release(), state, BEV_OPT_CLOSE_ON_FREE));
  if (!bev && fd >= 0) evutil_closesocket(fd);
  return bev;
}

void send_close_notify(bufferevent* bev) {
  if (bev == nullptr) return;
  if (SSL* ssl = bufferevent_openssl_get_ssl(bev)) {
    // Only after the handshake: mid-handshake there is no connection to close politely.
    if (SSL_is_init_finished(ssl) == 1) SSL_shutdown(ssl);
    drain_errors();
  }
}

}  // namespace ftpsgate::tls
