#include "data/backend_data_side.h"

#include "tls/bulk_transfer.h"
#include "tls/tls_bufferevent.h"

namespace ftpsgate::data {

net::BufferEventPtr make_backend_data_side(event_base* base, evutil_socket_t fd, const BackendDataTls& tls) {
  net::BufferEventPtr side;
  if (tls.context == nullptr) {
    side.reset(bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE));
  } else {
    tls::SslPtr ssl = tls.context->new_ssl(tls.host, tls.session.get());
    if (!ssl) {
      if (fd >= 0) evutil_closesocket(fd);
      return side;
    }
    tls::tune_for_bulk(ssl.get());
    return tls::make_tls_bufferevent(base, fd, std::move(ssl), BUFFEREVENT_SSL_CONNECTING);  // fd goes with it
  }
  if (!side && fd >= 0) evutil_closesocket(fd);
  return side;
}

namespace {

DialedDataSide adopt_dialed_data_side(event_base* base, net::Dialed dialed, const BackendDataTls& tls) {
  DialedDataSide side;
  if (dialed.pipe) {
    side.lease = std::move(dialed.lease);
    side.bev = std::move(dialed.pipe);
    side.open = true;
    side.agent_pipe = true;
    return side;
  }
  if (!dialed.fd) return side;
  side.bev = make_backend_data_side(base, dialed.fd.release(), tls);
  side.open = tls.context == nullptr;
  return side;
}

// Worded as before connections went through a Dialer: a TLS backend's refused connect used
// to surface through its handshake.
std::string data_dial_error(const BackendDataTls& tls, const std::string& error) {
  if (error == net::kDialTimeout) return "timed out connecting to the backend data port";
  return tls.context != nullptr ? "TLS with the backend data port failed: connection closed"
                                : "cannot connect to the backend data port";
}

}  // namespace

std::unique_ptr<net::PendingDial> dial_backend_data(event_base* base, net::Dialer& dialer,
                                                    const net::DialTarget& target,
                                                    std::chrono::milliseconds timeout, const BackendDataTls& tls,
                                                    DataSideDone done) {
  return dialer.dial(base, target, timeout,
                     [base, tls, done = std::move(done)](net::Dialed dialed, const std::string& error) {
                       if (!error.empty()) {
                         done({}, data_dial_error(tls, error));
                         return;
                       }
                       DialedDataSide side = adopt_dialed_data_side(base, std::move(dialed), tls);
                       if (!side.bev) {
                         done({}, "cannot set up the backend data connection");
                         return;
                       }
                       done(std::move(side), "");
                     });
}

}  // namespace ftpsgate::data
