#include "tls/starttls.h"

#include <event2/buffer.h>

#include "tls/tls_bufferevent.h"

namespace ftpsgate::tls {

StartTlsResult start_tls(event_base* base, net::BufferEventPtr& bev, evutil_socket_t fd, TlsOwner ssl,
                         bufferevent_ssl_state state, bool unread_elsewhere) {
  if (unread_elsewhere || (bev && evbuffer_get_length(bufferevent_get_input(bev.get())) > 0)) {
    return StartTlsResult::kPlaintextBuffered;
  }
  if (auto* owned = std::get_if<SslPtr>(&ssl)) {
    // Keep the socket, drop the clear bufferevent around it.
    if (bev) bufferevent_setfd(bev.get(), -1);
    bev.reset();
    bev = make_tls_bufferevent(base, fd, std::move(*owned), state);
  } else {
    // The clear bufferevent does not own the descriptor here (no BEV_OPT_CLOSE_ON_FREE).
    bev.reset();
    bev.reset(bufferevent_openssl_socket_new(base, fd, std::get<SSL*>(ssl), state, 0));
  }
  return bev ? StartTlsResult::kStarted : StartTlsResult::kFailed;
}

}  // namespace ftpsgate::tls
