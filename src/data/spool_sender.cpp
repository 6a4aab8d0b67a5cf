#include "data/spool_sender.h"

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <sys/socket.h>

#include <vector>

#include "data/backend_data_side.h"
#include "ftpsgate/limits.h"
#include "net/reset_on_close.h"
#include "tls/bufferevent_errors.h"
#include "tls/tls_bufferevent.h"
#include "tls/tls_errors.h"

namespace ftpsgate::data {

namespace {
constexpr std::size_t kSendChunk = 256 * 1024;
}

SpoolSender::SpoolSender(Settings settings, const inspection::Spool& spool, Done done)
    : settings_(std::move(settings)),
      spool_(spool),
      done_(std::move(done)),
      connect_timer_(settings_.base, [this] { fail("timed out connecting to the backend data port"); }),
      stall_timer_(settings_.base, [this] {
        if (std::chrono::steady_clock::now() - last_progress_ >= settings_.stall_timeout) {
          fail("the backend stopped reading the upload (data.stall_timeout)");
        } else {
          stall_timer_.arm(std::chrono::seconds(1));
        }
      }) {}

SpoolSender::~SpoolSender() { abort_connection(); }

void SpoolSender::start(const net::DialTarget& endpoint) {
  last_progress_ = std::chrono::steady_clock::now();
  connect_started_ = last_progress_;
  dial_ = dial_backend_data(settings_.base, *settings_.dialer, endpoint, settings_.connect_timeout,
                            settings_.upstream_tls, [this](DialedDataSide side, const std::string& error) {
                              dialed(std::move(side), error);
                            });
}

void SpoolSender::dialed(DialedDataSide side, const std::string& error) {
  dial_.reset();
  if (!error.empty()) {
    fail(error);
    return;
  }
  lease_ = std::move(side.lease);
  upstream_ = std::move(side.bev);
  attach(side.open);
}

void SpoolSender::attach(bool open) {
  bufferevent_setcb(upstream_.get(), &SpoolSender::on_read, &SpoolSender::on_write, &SpoolSender::on_event, this);
  bufferevent_setwatermark(upstream_.get(), EV_WRITE, limits::kRelayLowWater, 0);
  if (open) {
    on_event(upstream_.get(), BEV_EVENT_CONNECTED, this);
    return;
  }
  connect_timer_.arm_until(connect_started_ + settings_.connect_timeout);  // the TLS handshake
}

void SpoolSender::start_on(evutil_socket_t fd) {
  upstream_.reset(bufferevent_socket_new(settings_.base, fd, BEV_OPT_CLOSE_ON_FREE));
  if (!upstream_) {
    evutil_closesocket(fd);
    fail("cannot set up the spool's reader");
    return;
  }
  last_progress_ = std::chrono::steady_clock::now();
  attach(true);
}

void SpoolSender::on_event(bufferevent*, short what, void* self) {
  auto* sender = static_cast<SpoolSender*>(self);
  if (what & BEV_EVENT_CONNECTED) {
    sender->connected_ = true;
    sender->connect_timer_.cancel();
    sender->stall_timer_.arm(std::chrono::seconds(1));
    bufferevent_enable(sender->upstream_.get(), EV_READ | EV_WRITE);
    sender->fill();
    return;
  }
  if (sender->ended_) {
    // The backend's own close after our end: the connection's job is done.
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) sender->upstream_.reset();
    return;
  }
  if (!sender->connected_) {
    SSL* ssl = bufferevent_openssl_get_ssl(sender->upstream_.get());
    sender->fail(ssl != nullptr ? "TLS with the backend data port failed: " +
                                      tls::client_handshake_error(ssl, "connection closed")
                                : std::string("cannot connect to the backend data port"));
    return;
  }
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) sender->fail("backend data connection closed early");
}

void SpoolSender::on_write(bufferevent*, void* self) { static_cast<SpoolSender*>(self)->fill(); }

void SpoolSender::on_read(bufferevent* bev, void*) {
  // An upload's data connection carries nothing back: discard, never accumulate.
  evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
}

void SpoolSender::fill() {
  if (!connected_ || ended_ || reported_) return;
  evbuffer* out = bufferevent_get_output(upstream_.get());
  std::vector<char> chunk;
  while (offset_ < spool_.size() && evbuffer_get_length(out) < limits::kRelayHighWater) {
    chunk.resize(kSendChunk);
    const ssize_t n = spool_.read_at(offset_, chunk.data(), chunk.size());
    if (n <= 0) {
      fail("cannot read the spool");
      return;
    }
    evbuffer_add(out, chunk.data(), static_cast<std::size_t>(n));
    offset_ += static_cast<uint64_t>(n);
    last_progress_ = std::chrono::steady_clock::now();
  }
  if (offset_ < spool_.size() || evbuffer_get_length(out) > 0) return;
  // Everything is with the kernel: our close_notify says the file is complete, then a
  // half-close; we keep reading until the backend closes (its unread tickets would turn
  // our close into a RST and cost the file's tail).
  ended_ = true;
  stall_timer_.cancel();
  tls::send_close_notify(upstream_.get());
  shutdown(bufferevent_getfd(upstream_.get()), SHUT_WR);
  bufferevent_enable(upstream_.get(), EV_READ);
  reported_ = true;
  done_(true, "");
}

void SpoolSender::fail(const std::string& error) {
  if (reported_) return;
  reported_ = true;
  connect_timer_.cancel();
  stall_timer_.cancel();
  dial_.reset();
  abort_connection();
  done_(false, error);
}

void SpoolSender::abort_connection() {
  if (!upstream_ || ended_) return;
  // SECURITY: a FIN would tell the backend a cut upload was complete.
  net::reset_on_close(bufferevent_getfd(upstream_.get()));
  upstream_.reset();
}

}  // namespace ftpsgate::data
