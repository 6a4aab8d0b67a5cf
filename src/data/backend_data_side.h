// The gateway's end of a data connection to the backend: clear, or TLS in the client role
// resuming the upstream control session (RFC 4217 §7, also when the backend connected to
// us). Shared by the relayed data channel and the inspected upload's sender.
#pragma once

#include <event2/bufferevent.h>
#include <openssl/ssl.h>

#include <string>

#include "net/libevent_handles.h"
#include "tls/client_context.h"

namespace ftpsgate::data {

// `fd` -1: to be connected with bufferevent_socket_connect. Owns fd, also on failure
// (then an empty pointer).
net::BufferEventPtr make_backend_data_side(event_base* base, evutil_socket_t fd, const tls::ClientContext* tls,
                                           const std::string& host, SSL_SESSION* session);

}  // namespace ftpsgate::data
