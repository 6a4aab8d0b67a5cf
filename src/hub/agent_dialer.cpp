#include "hub/agent_dialer.h"

#include <event2/buffer.h>

#include <algorithm>
#include <mutex>
#include <optional>

#include "ftpsgate/limits.h"
#include "net/timer.h"
#include "tls/bufferevent_errors.h"
#include "tls/bulk_transfer.h"
#include "tls/tls_bufferevent.h"
#include "tunnel/agent_protocol.h"

namespace ftpsgate::hub {

std::string_view purpose_name(net::DialPurpose purpose) {
  switch (purpose) {
    case net::DialPurpose::kControl:
      return "control";
    case net::DialPurpose::kData:
      return "data";
    case net::DialPurpose::kHealth:
      return "health";
  }
  return "control";
}

namespace {

tunnel::Purpose wire_purpose(net::DialPurpose purpose) {
  switch (purpose) {
    case net::DialPurpose::kControl:
      return tunnel::Purpose::kControl;
    case net::DialPurpose::kData:
      return tunnel::Purpose::kData;
    case net::DialPurpose::kHealth:
      return tunnel::Purpose::kHealth;
  }
  return tunnel::Purpose::kControl;
}

class FailedDial : public net::PendingDial {
 public:
  FailedDial(event_base* base, std::string error, net::Dialer::Done done)
      : error_(std::move(error)), done_(std::move(done)), timer_(base, [this] {
          // Moved out first: the callee may destroy this object.
          auto finish = std::move(done_);
          finish({}, error_);
        }) {
    timer_.arm(std::chrono::milliseconds(0));
  }

 private:
  std::string error_;
  net::Dialer::Done done_;
  net::Timer timer_;
};

// Where the hub's answer meets the dial on its own loop. The hub's thread stores the
// handover and activates `wake`; the dial, going away, clears `wake` first (under the
// mutex), so the hub never touches a freed event and drops its late answer instead.
struct Rendezvous {
  std::mutex mutex;
  event* wake = nullptr;
  std::optional<Handover> handed;
};

class AgentDial : public net::PendingDial {
 public:
  AgentDial(event_base* base, AgentHub& hub, log::Logger& logger, metrics::Metrics& metrics,
            const net::DialTarget& target, tunnel::ConnectRequest request, std::chrono::milliseconds timeout,
            net::Dialer::Done done)
      : base_(base),
        hub_(hub),
        logger_(logger),
        metrics_(metrics),
        target_(target),
        request_(std::move(request)),
        done_(std::move(done)),
        started_(std::chrono::steady_clock::now()),
        deadline_(started_ + timeout),
        rendezvous_(std::make_shared<Rendezvous>()),
        timer_(base, [this] { on_timeout(); }),
        wake_(event_new(base, -1, 0, &AgentDial::on_wake, this)) {
    rendezvous_->wake = wake_.get();
    timer_.arm(timeout);
    ask_hub();
  }

  ~AgentDial() override {
    std::optional<Handover> late;
    {
      std::lock_guard lock(rendezvous_->mutex);
      rendezvous_->wake = nullptr;
      late.swap(rendezvous_->handed);
    }
    ticket_->cancelled.store(true);
    if (!finished_) count("cancelled");
    if (pipe_) bufferevent_setcb(pipe_.get(), nullptr, nullptr, nullptr, nullptr);
    // pipe_ (the link) closes before lease_ ends (member order); `late` closes its link.
  }
  AgentDial(const AgentDial&) = delete;
  AgentDial& operator=(const AgentDial&) = delete;

 private:
  static void on_wake(evutil_socket_t, short, void* self) { static_cast<AgentDial*>(self)->handed(); }
  static void on_read(bufferevent*, void* self) { static_cast<AgentDial*>(self)->read_reply(); }
  static void on_event(bufferevent*, short what, void* self) { static_cast<AgentDial*>(self)->pipe_event(what); }

  std::string target_text() const { return request_.host.to_string() + ":" + std::to_string(request_.port); }

  // A ticket of its own for each ask: the hub may still hold a cancelled one.
  void ask_hub() {
    ticket_ = std::make_shared<LinkTicket>(deadline_);
    hub_.request(target_.agent, ticket_, [rendezvous = rendezvous_](Handover handover) {
      Handover dropped;  // destroyed after the lock is released: it may end a lease
      std::lock_guard lock(rendezvous->mutex);
      if (rendezvous->wake == nullptr) {
        dropped = std::move(handover);
        return;
      }
      rendezvous->handed = std::move(handover);
      event_active(rendezvous->wake, EV_READ, 0);
    });
  }

  void count(std::string_view result) {
    metrics_.agent_requests(target_.agent, purpose_name(target_.purpose), result).Increment();
  }

  void handed() {
    std::optional<Handover> handover;
    {
      std::lock_guard lock(rendezvous_->mutex);
      handover.swap(rendezvous_->handed);
    }
    if (!handover || finished_) return;
    switch (handover->failure) {
      case HandoverFailure::kNotConnected:
        finish({}, handover->error, "not_connected");
        return;
      case HandoverFailure::kBusy:
        finish({}, handover->error, "busy");
        return;
      case HandoverFailure::kShuttingDown:
        finish({}, handover->error, "failed");
        return;
      case HandoverFailure::kNone:
        break;
    }
    // Declared before pipe_: ends after the bufferevent is gone.
    lease_ = std::move(handover->lease);
    pipe_ = tls::make_tls_bufferevent(base_, handover->fd.release(), std::move(handover->ssl), BUFFEREVENT_SSL_OPEN);
    if (!pipe_) {
      finish({}, "agent " + target_.agent + ": cannot use its link for " + target_text(), "failed");
      return;
    }
    bufferevent_setcb(pipe_.get(), &AgentDial::on_read, nullptr, &AgentDial::on_event, this);
    const std::string line = tunnel::build_connect(request_);
    bufferevent_write(pipe_.get(), line.data(), line.size());
    bufferevent_enable(pipe_.get(), EV_READ | EV_WRITE);
  }

  void read_reply() {
    if (finished_ || !pipe_) return;
    evbuffer* input = bufferevent_get_input(pipe_.get());
    char head[limits::kAgentMaxReplyLine];
    const ev_ssize_t copied = evbuffer_copyout(input, head, std::min(evbuffer_get_length(input), sizeof(head)));
    if (copied <= 0) return;
    const std::string_view received(head, static_cast<std::size_t>(copied));
    const auto split = tunnel::split_line(received, limits::kAgentMaxReplyLine);
    if (split.status == tunnel::LineSplit::Status::kNeedMore) return;
    if (split.status != tunnel::LineSplit::Status::kLine) {
      finish({}, "agent " + target_.agent + " sent a malformed reply for " + target_text(), "failed");
      return;
    }
    const auto parsed = tunnel::parse_line(received.substr(0, split.length));
    // Only the line: whatever the backend sent after OK stays for the consumer.
    evbuffer_drain(input, split.length);
    if (parsed.message && parsed.message->kind == tunnel::Message::Kind::kOk) {
      bufferevent_setcb(pipe_.get(), nullptr, nullptr, nullptr, nullptr);
      // Read-ahead only for data pipes, which ByteRelay reads until OpenSSL wants more. A
      // bufferevent reader (control, health, this OK line) would leave records read ahead
      // stuck in OpenSSL's buffer, where no socket event announces them.
      if (target_.purpose == net::DialPurpose::kData) tls::tune_for_bulk(bufferevent_openssl_get_ssl(pipe_.get()));
      net::Dialed dialed;
      dialed.lease = std::move(lease_);
      dialed.pipe = std::move(pipe_);
      metrics_.observe_agent_dial(std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count());
      finish(std::move(dialed), "", "ok");
      return;
    }
    if (parsed.message && parsed.message->kind == tunnel::Message::Kind::kErr) {
      const std::string_view reason = tunnel::reason_name(parsed.message->reason);
      logger_.write(LogLevel::kWarn, "agent_request_refused",
                    {{"agent", target_.agent},
                     {"target", target_text()},
                     {"session", target_.session},
                     {"purpose", purpose_name(target_.purpose)},
                     {"reason", reason}});
      finish({}, "agent " + target_.agent + " refused " + target_text() + ": " + std::string(reason), "refused");
      return;
    }
    // SECURITY: nothing but OK or ERR may answer a CONNECT; the link is not trusted further.
    finish({}, "agent " + target_.agent + " sent an unexpected reply for " + target_text(), "failed");
  }

  void pipe_event(short what) {
    if (finished_) return;
    if ((what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) == 0) return;
    const std::string why = tls::drain_bufferevent_errors(pipe_.get(), "link closed");
    if (may_retry()) return retry(why);
    finish({}, "agent " + target_.agent + " closed the link before answering for " + target_text() + ": " + why,
           "failed");
  }

  // The agent closed the link before a byte of its answer: it was draining, or its keepalive
  // timeout crossed our lease, and another link may well be fine. A control or health dial
  // asks the hub once more. Never a data dial: the agent may already have connected to the
  // passive port, which a backend opens for one connection only.
  bool may_retry() const {
    return !retried_ && target_.purpose != net::DialPurpose::kData &&
           evbuffer_get_length(bufferevent_get_input(pipe_.get())) == 0 &&
           std::chrono::steady_clock::now() < deadline_;
  }

  void retry(const std::string& why) {
    retried_ = true;
    logger_.write(LogLevel::kWarn, "agent_link_lost",
                  {{"agent", target_.agent},
                   {"target", target_text()},
                   {"session", target_.session},
                   {"purpose", purpose_name(target_.purpose)},
                   {"error", why},
                   {"retry", true}});
    bufferevent_setcb(pipe_.get(), nullptr, nullptr, nullptr, nullptr);
    pipe_.reset();
    lease_.reset();
    ask_hub();
  }

  void on_timeout() {
    if (finished_) return;
    ticket_->cancelled.store(true);
    finish({},
           pipe_ ? "agent " + target_.agent + " did not answer for " + target_text() + " in time"
                 : "agent " + target_.agent + " had no idle link for " + target_text() + " in time",
           "timeout");
  }

  // Once. After `done` this object may be gone: nothing touches it.
  void finish(net::Dialed dialed, const std::string& error, std::string_view result) {
    finished_ = true;
    timer_.cancel();
    count(result);
    if (!error.empty()) {
      // The link (if any) closes now; the agent replaces it.
      if (pipe_) bufferevent_setcb(pipe_.get(), nullptr, nullptr, nullptr, nullptr);
      pipe_.reset();
      lease_.reset();
    }
    auto done = std::move(done_);
    done(std::move(dialed), error);
  }

  event_base* base_;
  AgentHub& hub_;
  log::Logger& logger_;
  metrics::Metrics& metrics_;
  const net::DialTarget target_;
  const tunnel::ConnectRequest request_;
  net::Dialer::Done done_;
  const std::chrono::steady_clock::time_point started_;
  const std::chrono::steady_clock::time_point deadline_;
  bool finished_ = false;
  bool retried_ = false;
  std::shared_ptr<Rendezvous> rendezvous_;
  std::shared_ptr<LinkTicket> ticket_;
  // Declared before the pipe: the lease ends after the link's bufferevent is freed.
  std::shared_ptr<void> lease_;
  net::BufferEventPtr pipe_;
  net::Timer timer_;
  net::EventPtr wake_;
};

}  // namespace

std::unique_ptr<net::PendingDial> fail_dial_later(event_base* base, std::string error, net::Dialer::Done done) {
  return std::make_unique<FailedDial>(base, std::move(error), std::move(done));
}

AgentDialer::AgentDialer(AgentHub& hub, log::Logger& logger, metrics::Metrics& metrics)
    : hub_(hub), logger_(logger), metrics_(metrics) {}

std::unique_ptr<net::PendingDial> AgentDialer::dial(event_base* base, const net::DialTarget& target,
                                                    std::chrono::milliseconds timeout, Done done) {
  std::string error;
  // The host as configured: a dotted quad, an IPv6 literal or a name (the agent resolves it).
  // SECURITY: what the agent's strict parser would refuse never leaves the gateway.
  const bool v6 = target.host.find(':') != std::string::npos;
  auto host = tunnel::parse_host(v6 ? "[" + target.host + "]" : target.host, error);
  if (!host || target.port == 0) {
    metrics_.agent_requests(target.agent, purpose_name(target.purpose), "failed").Increment();
    return fail_dial_later(base,
                           "agent " + target.agent + ": invalid target " + target.host + ":" +
                               std::to_string(target.port) + (error.empty() ? "" : ": " + error),
                           std::move(done));
  }
  tunnel::ConnectRequest request{*host, target.port, target.session, wire_purpose(target.purpose)};
  return std::make_unique<AgentDial>(base, hub_, logger_, metrics_, target, std::move(request), timeout,
                                     std::move(done));
}

}  // namespace ftpsgate::hub
