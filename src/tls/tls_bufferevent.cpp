#include "tls/tls_bufferevent.h"

namespace ftpsgate::tls {

net::BufferEventPtr make_tls_bufferevent(event_base* base, evutil_socket_t fd, SslPtr ssl,
                                         bufferevent_ssl_state state) {
  // Released before the call: from here libevent owns the SSL, also when it fails.
  net::BufferEventPtr bev(bufferevent_openssl_socket_new(base, fd, ssl.release(), state, BEV_OPT_CLOSE_ON_FREE));
  if (!bev && fd >= 0) evutil_closesocket(fd);
  return bev;
}

}  // namespace ftpsgate::tls
