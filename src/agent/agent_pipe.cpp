#include "agent/agent_pipe.h"

#include <event2/bufferevent_ssl.h>
#include <sys/socket.h>

#include "net/reset_on_close.h"
#include "tls/tls_bufferevent.h"
#include "tls/tls_errors.h"

namespace ftpsgate::agent {

AgentPipe::AgentPipe(event_base* base, net::BufferEventPtr link, net::BufferEventPtr target, bool bulk,
                     Progress progress, Done done)
    : progress_(std::move(progress)), done_(std::move(done)), link_(std::move(link)), target_(std::move(target)) {
  // SECURITY: a gateway may only end its side with close_notify; a bare FIN (the gateway
  // died, or someone on the path cut it) is a truncation and becomes RST to the target.
  // Data pipes: the gateway ends them with close_notify, then FIN (batch_tls_reads).
  to_target_ = std::make_unique<data::ByteRelay>(
      base, data::Direction::kUpload, link_.get(), target_.get(),
      data::ByteRelay::Options{
          .stall_timeout = std::nullopt, .strict_tls_end = true, .batch_clear_reads = bulk, .batch_tls_reads = bulk},
      to_target_side_);
  to_gateway_ = std::make_unique<data::ByteRelay>(
      base, data::Direction::kDownload, target_.get(), link_.get(),
      data::ByteRelay::Options{.stall_timeout = std::nullopt, .strict_tls_end = true, .batch_clear_reads = bulk},
      to_gateway_side_);
}

void AgentPipe::start() {
  bufferevent_setcb(link_.get(), nullptr, &AgentPipe::on_link_write, &AgentPipe::on_link_event, this);
  bufferevent_setcb(target_.get(), nullptr, &AgentPipe::on_target_write, &AgentPipe::on_target_event, this);
  to_target_->start();
  if (ended_) return;
  to_gateway_->start();
}

void AgentPipe::on_link_write(bufferevent*, void* self) {
  auto* pipe = static_cast<AgentPipe*>(self);
  if (pipe->ended_) return;
  pipe->report_progress();
  pipe->to_gateway_->sink_drained();
}

void AgentPipe::on_target_write(bufferevent*, void* self) {
  auto* pipe = static_cast<AgentPipe*>(self);
  if (pipe->ended_) return;
  pipe->report_progress();
  pipe->to_target_->sink_drained();
}

void AgentPipe::on_link_event(bufferevent*, short what, void* self) {
  auto* pipe = static_cast<AgentPipe*>(self);
  if (pipe->ended_ || (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) == 0) return;
  // Writing to the gateway failed: it is gone without close_notify.
  pipe->abort(false, true, "gateway_aborted",
              "writing to the gateway failed: " + tls::drain_errors_or("connection lost"));
}

void AgentPipe::on_target_event(bufferevent*, short what, void* self) {
  auto* pipe = static_cast<AgentPipe*>(self);
  if (pipe->ended_ || (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) == 0) return;
  pipe->abort(true, false, "target_reset", "writing to the target failed");
}

void AgentPipe::relay_ended(bool to_target, bool ok, const std::string& error) {
  if (ended_) return;
  if (to_target) {
    if (!ok) {
      abort(false, true, "gateway_aborted", error);
      return;
    }
    // The gateway's close_notify, and every byte before it is with the kernel: a graceful
    // half-close, so the target sees a complete stream (no more RST on close).
    const int fd = bufferevent_getfd(target_.get());
    const linger graceful{0, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &graceful, sizeof(graceful));
    shutdown(fd, SHUT_WR);
    to_target_done_ = true;
  } else {
    if (!ok) {
      abort(true, false, "target_reset", error);
      return;
    }
    // The target's FIN: close_notify tells the gateway the stream is complete, then FIN.
    tls::send_close_notify(link_.get());
    shutdown(bufferevent_getfd(link_.get()), SHUT_WR);
    to_gateway_done_ = true;
  }
  if (to_target_done_ && to_gateway_done_) finish(true, "closed", "");
}

void AgentPipe::abort(bool reset_link, bool reset_target, const std::string& how, const std::string& error) {
  if (reset_link) net::reset_on_close(bufferevent_getfd(link_.get()));
  // The target's SO_LINGER {1,0} may have been cleared by a graceful half-close.
  if (reset_target) net::reset_on_close(bufferevent_getfd(target_.get()));
  finish(false, how, error);
}

void AgentPipe::cut() {
  if (ended_) return;
  abort(true, true, "cut", "drain_timeout reached");
}

void AgentPipe::report_progress() {
  const uint64_t to_target = to_target_->bytes();
  const uint64_t to_gateway = to_gateway_->bytes();
  if (to_target == reported_to_target_ && to_gateway == reported_to_gateway_) return;
  progress_(to_target - reported_to_target_, to_gateway - reported_to_gateway_);
  reported_to_target_ = to_target;
  reported_to_gateway_ = to_gateway;
}

void AgentPipe::finish(bool clean, const std::string& how, const std::string& error) {
  if (ended_) return;
  ended_ = true;
  End end{clean, how, error, to_target_->bytes(), to_gateway_->bytes()};
  report_progress();
  to_target_->stop();
  to_gateway_->stop();
  // The sockets close when the owner frees the pipe, from the loop (RST where set above).
  for (bufferevent* bev : {link_.get(), target_.get()}) {
    bufferevent_disable(bev, EV_READ | EV_WRITE);
    bufferevent_setcb(bev, nullptr, nullptr, nullptr, nullptr);
  }
  done_(end);
}

}  // namespace ftpsgate::agent
