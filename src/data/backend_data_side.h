// The gateway's end of a data connection to the backend: clear, or TLS in the client role
// resuming the upstream control session (RFC 4217 §7, also when the backend connected to
// us). Shared by the relayed data channel and the inspected upload's sender.
#pragma once

#include <event2/bufferevent.h>
#include <openssl/ssl.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "net/dialer.h"
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
  net::Dialer* dialer = nullptr;  // outlives the transfer
  BackendDataTls upstream_tls;
  std::chrono::milliseconds connect_timeout{30000};
  std::chrono::milliseconds stall_timeout{300000};
};

// On a connected `fd`. Owns fd, also on failure (then an empty pointer).
net::BufferEventPtr make_backend_data_side(event_base* base, evutil_socket_t fd, const BackendDataTls& tls);

// A connection to the backend's data port as a bufferevent: an agent's pipe as it is, a
// direct descriptor through make_backend_data_side. `open`: usable now (clear, or a pipe);
// otherwise a TLS handshake runs and BEV_EVENT_CONNECTED follows.
struct DialedDataSide {
  std::shared_ptr<void> lease;  // keep it as long as `bev` (declared before it)
  net::BufferEventPtr bev;
  bool open = false;
  bool agent_pipe = false;  // an agent link's pipe: its end is close_notify, then FIN
};
// Gets the side, or (no side) why not, in the words these connections always failed with.
using DataSideDone = std::function<void(DialedDataSide side, const std::string& error)>;

// Dials the backend's data port with `dialer` and sets up the gateway's end of it; `done`
// runs once, from the loop, unless the returned dial is destroyed first.
std::unique_ptr<net::PendingDial> dial_backend_data(event_base* base, net::Dialer& dialer,
                                                    const net::DialTarget& target,
                                                    std::chrono::milliseconds timeout, const BackendDataTls& tls,
                                                    DataSideDone done);

}  // namespace ftpsgate::data
