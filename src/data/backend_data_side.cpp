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

}  // namespace ftpsgate::data
