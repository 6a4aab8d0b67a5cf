#include "data/spool_receiver.h"

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>

#include "net/reset_on_close.h"
#include "tls/tls_errors.h"

namespace ftpsgate::data {

SpoolReceiver::SpoolReceiver(Settings settings, inspection::Spool& spool, Done done)
    : settings_(std::move(settings)),
      spool_(spool),
      done_(std::move(done)),
      connect_timer_(settings_.base, [this] { report({false, "timed out connecting to the backend data port"}); }),
      report_timer_(settings_.base, [this] { report(pending_); }) {}

SpoolReceiver::~SpoolReceiver() {
  relay_.reset();
  if (upstream_ && !reported_) net::reset_on_close(bufferevent_getfd(upstream_.get()));
}

void SpoolReceiver::start(const net::DialTarget& endpoint) {
  pair_ = make_spool_pair(settings_.base);
  if (!pair_.relay_end) {
    report_later({false, "cannot set up the backend data connection"});
    return;
  }
  bufferevent_setcb(pair_.relay_end.get(), nullptr, &SpoolReceiver::on_sink_write, nullptr, this);
  bufferevent_setcb(pair_.spool_end.get(), &SpoolReceiver::on_spool_readable, nullptr, nullptr, this);
  bufferevent_enable(pair_.spool_end.get(), EV_READ);
  connect_started_ = std::chrono::steady_clock::now();
  dial_ = dial_backend_data(settings_.base, *settings_.dialer, endpoint, settings_.connect_timeout,
                            settings_.upstream_tls, [this](DialedDataSide side, const std::string& error) {
                              dialed(std::move(side), error);
                            });
}

void SpoolReceiver::dialed(DialedDataSide side, const std::string& error) {
  dial_.reset();
  if (!error.empty()) {
    report({false, error});
    return;
  }
  lease_ = std::move(side.lease);
  upstream_ = std::move(side.bev);
  agent_pipe_ = side.agent_pipe;
  bufferevent_setcb(upstream_.get(), &SpoolReceiver::on_upstream_read, nullptr, &SpoolReceiver::on_upstream_event,
                    this);
  if (side.open) {
    on_upstream_event(upstream_.get(), BEV_EVENT_CONNECTED, this);  // the relay drains what a pipe holds
    return;
  }
  connect_timer_.arm_until(connect_started_ + settings_.connect_timeout);  // the TLS handshake
}

void SpoolReceiver::on_upstream_event(bufferevent*, short what, void* self) {
  auto* receiver = static_cast<SpoolReceiver*>(self);
  if (receiver->reported_) return;
  if (what & BEV_EVENT_CONNECTED) {
    receiver->connected_ = true;
    receiver->connect_timer_.cancel();
    ByteRelay::Observer& observer = *receiver;
    receiver->relay_ = std::make_unique<ByteRelay>(receiver->settings_.base, Direction::kDownload,
                                                   receiver->upstream_.get(), receiver->pair_.relay_end.get(),
                                                   ByteRelay::Options{.stall_timeout = receiver->settings_.stall_timeout,
                                                                      .batch_tls_reads = receiver->agent_pipe_},
                                                   observer);
    receiver->relay_->start();
    return;
  }
  if (!receiver->connected_) {
    SSL* ssl = bufferevent_openssl_get_ssl(receiver->upstream_.get());
    receiver->report({false, ssl != nullptr ? "TLS with the backend data port failed: " +
                                                  tls::client_handshake_error(ssl, "connection closed")
                                            : std::string("cannot connect to the backend data port")});
    return;
  }
  if ((what & BEV_EVENT_EOF) && receiver->relay_) {
    receiver->relay_->source_ended();
  } else if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
    receiver->report({false, "backend data connection closed early"});
  }
}

void SpoolReceiver::on_upstream_read(bufferevent*, void* self) {
  auto* receiver = static_cast<SpoolReceiver*>(self);
  if (receiver->relay_ && !receiver->reported_) receiver->relay_->source_readable();
}

void SpoolReceiver::on_sink_write(bufferevent*, void* self) {
  auto* receiver = static_cast<SpoolReceiver*>(self);
  if (receiver->relay_ && !receiver->reported_) receiver->relay_->sink_drained();
}

void SpoolReceiver::on_spool_readable(bufferevent* bev, void* self) {
  auto* receiver = static_cast<SpoolReceiver*>(self);
  if (receiver->reported_) return;
  if (!move_to_spool(bufferevent_get_input(bev), receiver->spool_)) {
    receiver->report({false, receiver->spool_.full() ? "the gateway's spool is full (inspection.max_spool_bytes)"
                                                     : "cannot write the spool: " + receiver->spool_.error(),
                      true});
  }
}

void SpoolReceiver::on_relay_end(bool ok, const std::string& error) {
  if (!ok) {
    report({false, error});
    return;
  }
  // The pair may still hold the relay's last bytes.
  on_spool_readable(pair_.spool_end.get(), this);
  report({true, ""});
}

void SpoolReceiver::report(Outcome outcome) {
  if (reported_) return;
  connect_timer_.cancel();
  report_timer_.cancel();
  dial_.reset();
  if (relay_) relay_->stop();
  if (!outcome.ok && upstream_) net::reset_on_close(bufferevent_getfd(upstream_.get()));
  reported_ = true;
  // The backend's stream is done either way: nothing more is read from it.
  upstream_.reset();
  lease_.reset();
  const Done done = done_;  // it may free this receiver
  done(outcome);
}

void SpoolReceiver::report_later(Outcome outcome) {
  pending_ = std::move(outcome);
  report_timer_.arm(std::chrono::milliseconds(0));
}

}  // namespace ftpsgate::data
