// AUTH TLS in either direction: the clear bufferevent of a connection is replaced by a
// TLS one on the same descriptor. The one place where that swap happens.
#pragma once

#include <variant>

#include <event2/bufferevent_ssl.h>

#include "net/libevent_handles.h"
#include "tls/openssl_handles.h"

namespace ftpsgate::tls {

// Who owns the SSL and the descriptor afterwards: the new bufferevent (SslPtr; see
// make_tls_bufferevent), or the caller (SSL*: the client's control channel returns to
// clear on the same descriptor after CCC).
using TlsOwner = std::variant<SslPtr, SSL*>;

enum class StartTlsResult {
  kStarted,
  kPlaintextBuffered,  // refused: see below; `bev` is unchanged
  kFailed,             // libevent could not create the bufferevent; `bev` is gone
};

// SECURITY: STARTTLS injection (CVE-2011-0411 class; the TODO in Envoy's starttls_socket).
// Refused while anything the peer sent in clear is still buffered — in `bev`'s input, or
// (`unread_elsewhere`) already taken into the caller's line reader — so no byte that came
// in clear is ever read as if it came over TLS. `bev` may be null (implicit TLS).
StartTlsResult start_tls(event_base* base, net::BufferEventPtr& bev, evutil_socket_t fd, TlsOwner ssl,
                         bufferevent_ssl_state state, bool unread_elsewhere);

}  // namespace ftpsgate::tls
