// The one way to put a TLS connection on a bufferevent that owns it.
#pragma once

#include <event2/bufferevent_ssl.h>

#include "net/libevent_handles.h"
#include "tls/openssl_handles.h"

namespace ftpsgate::tls {

// On success the bufferevent owns `ssl` and `fd` (BEV_OPT_CLOSE_ON_FREE); on failure both
// are gone. libevent 2.1 frees the SSL itself when bufferevent_openssl_socket_new fails
// with BEV_OPT_CLOSE_ON_FREE, but never the descriptor: a caller that frees the SSL again
// double-frees it, one that forgets the descriptor leaks it. fd -1: to be connected.
net::BufferEventPtr make_tls_bufferevent(event_base* base, evutil_socket_t fd, SslPtr ssl,
                                         bufferevent_ssl_state state);

// Our close_notify on a connection we are done sending on (before it is freed or half-closed),
// if it carries TLS and its handshake finished; best effort, never blocks. A bare FIN would
// say "cut": an agent then resets the backend's socket, and an FTPS peer logs a truncation.
void send_close_notify(bufferevent* bev);

}  // namespace ftpsgate::tls
