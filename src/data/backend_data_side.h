// The gateway's end of a data connection to the backend: clear, or TLS in the client role
// resuming the upstream control session (RFC 4217 §7, also when the backend connected to
// us). Shared by the relayed data channel and the inspected upload's sender.
#pragma once

#include <event2/bufferevent.h>
#include <openssl/ssl.h>

#include <chrono>
#include <memory>
#include <string>

#include "net/libevent_handles.h"
#include "tls/client_context.h"

namespace ftpsgate::data {

// TLS towards an FTPS backend: data connections resume the upstream control session
// (vsftpd require_ssl_reuse, ProFTPD without NoSessionReuseRequired). No context: clear.
struct BackendDataTls {
  const tls::ClientContext* context = nullptr;
  std::string host;
  std::shared_ptr<SSL_SESSION> session;
};

// What a spooled transfer's own connection to the backend's data port needs (inspection:
// the upload's sender, the download's receiver).
struct BackendDataSettings {
  event_base* base = nullptr;
  BackendDataTls upstream_tls;
  std::chrono::milliseconds connect_timeout{30000};
  std::chrono::milliseconds stall_timeout{300000};
};

// `fd` -1: to be connected with bufferevent_socket_connect. Owns fd, also on failure
// (then an empty pointer).
net::BufferEventPtr make_backend_data_side(event_base* base, evutil_socket_t fd, const BackendDataTls& tls);

}  // namespace ftpsgate::data
