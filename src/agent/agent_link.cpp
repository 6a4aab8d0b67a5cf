#include "agent/agent_link.h"

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/x509.h>

#include "ftpsgate/limits.h"
#include "tls/bufferevent_errors.h"
#include "tls/bulk_transfer.h"
#include "tls/tls_bufferevent.h"
#include "tls/tls_errors.h"

namespace ftpsgate::agent {

namespace {
// How long an ERR line may take to reach the gateway before the link is closed anyway.
constexpr std::chrono::seconds kErrFlush{2};

tunnel::ErrReason reason_for(TcpConnector::Failure failure) {
  switch (failure) {
    case TcpConnector::Failure::kResolveFailed:
      return tunnel::ErrReason::kResolveFailed;
    case TcpConnector::Failure::kConnectTimeout:
      return tunnel::ErrReason::kConnectTimeout;
    default:
      return tunnel::ErrReason::kConnectFailed;
  }
}
}  // namespace

std::string_view state_name(AgentLink::State state) {
  switch (state) {
    case AgentLink::State::kDialing:
      return "dialing";
    case AgentLink::State::kIdle:
      return "idle";
    case AgentLink::State::kRequest:
      return "request";
    case AgentLink::State::kPiped:
      return "piped";
    case AgentLink::State::kClosing:
      return "closing";
    case AgentLink::State::kClosed:
      return "closed";
  }
  return "closed";
}

AgentLink::AgentLink(AgentContext& context, const AgentGatewayConfig& gateway, std::string gateway_label, Owner& owner)
    : context_(context),
      gateway_(gateway),
      gateway_label_(std::move(gateway_label)),
      owner_(owner),
      timer_(context.base, [this] {
        switch (state_) {
          case State::kDialing:
            fail_dial("connect_timeout", "no TLS link within agent.pool.connect_timeout");
            return;
          case State::kIdle:
            end_.dropped_by_us = true;
            say_goodbye();
            close("no byte from the gateway within agent.pool.keepalive_timeout");
            return;
          case State::kClosing:
            end();
            return;
          default:
            return;
        }
      }) {}

AgentLink::~AgentLink() = default;

void AgentLink::start() {
  timer_.arm(context_.config.pool.connect_timeout);
  connector_ = std::make_unique<TcpConnector>(
      context_.base, context_.dns, gateway_.address.host, gateway_.address.port, context_.config.pool.connect_timeout,
      false, [this](net::UniqueFd fd, TcpConnector::Failure failure, const std::string& detail) {
        connected(std::move(fd), failure, detail);
      });
  connector_->start();
}

void AgentLink::connected(net::UniqueFd fd, TcpConnector::Failure failure, const std::string& detail) {
  // Not freed inside its own callback: it goes with the link.
  done_connector_ = std::move(connector_);
  if (failure != TcpConnector::Failure::kNone) {
    fail_dial(std::string(failure_name(failure)), detail);
    return;
  }
  const std::string& name = gateway_.server_name.empty() ? gateway_.address.host : gateway_.server_name;
  tls::SslPtr ssl = context_.tls->new_ssl(name);
  if (!ssl) {
    fail_dial("tls_failed", "cannot start TLS: " + tls::drain_errors_or("SSL_new failed"));
    return;
  }
  bev_ = tls::make_tls_bufferevent(context_.base, fd.release(), std::move(ssl), BUFFEREVENT_SSL_CONNECTING);
  if (!bev_) {
    fail_dial("tls_failed", "cannot start TLS: " + tls::drain_errors_or("no bufferevent"));
    return;
  }
  bufferevent_setcb(bev_.get(), &AgentLink::on_read, &AgentLink::on_write, &AgentLink::on_event, this);
  // SECURITY: a line never grows a buffer: past the longest request, the link is refused.
  bufferevent_setwatermark(bev_.get(), EV_READ, 0, limits::kAgentMaxRequestLine);
  bufferevent_enable(bev_.get(), EV_READ | EV_WRITE);
}

void AgentLink::on_event(bufferevent* bev, short what, void* self) {
  auto* link = static_cast<AgentLink*>(self);
  if (link->state_ == State::kDialing) {
    if (what & BEV_EVENT_CONNECTED) {
      link->handshake_done();
      return;
    }
    SSL* ssl = bufferevent_openssl_get_ssl(bev);
    const long verify = ssl != nullptr ? SSL_get_verify_result(ssl) : X509_V_OK;
    if (verify != X509_V_OK) {
      tls::drain_bufferevent_errors(bev, "");
      link->fail_dial("refused",
                      std::string("certificate verification failed: ") + X509_verify_cert_error_string(verify));
    } else {
      link->fail_dial("tls_failed", tls::drain_bufferevent_errors(bev, "connection closed during the TLS handshake"));
    }
    return;
  }
  if ((what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) == 0) return;
  const std::string why = (what & BEV_EVENT_EOF)
                              ? "the gateway closed the link"
                              : "link error: " + tls::drain_bufferevent_errors(bev, "connection lost");
  switch (link->state_) {
    case State::kIdle:
    case State::kRequest:  // the gateway gave up while the target connect ran
      link->connector_.reset();
      link->close(why);
      return;
    case State::kClosing:
      link->end();
      return;
    default:
      return;
  }
}

void AgentLink::handshake_done() {
  SSL* ssl = bufferevent_openssl_get_ssl(bev_.get());
  // SECURITY: the verified gateway must also speak our protocol (ALPN); a TLS server of
  // some other kind under the same certificate never gets a link.
  if (ssl == nullptr || !alpn_selected(ssl)) {
    fail_dial("refused", "the gateway did not select ALPN ftpsgate-agent/1");
    return;
  }
  state_ = State::kIdle;
  timer_.arm(context_.config.pool.keepalive_timeout);
  owner_.link_idle(*this);
  if (state_ == State::kIdle) read_lines();  // bytes that came with the handshake
}

void AgentLink::on_read(bufferevent*, void* self) {
  auto* link = static_cast<AgentLink*>(self);
  if (link->state_ != State::kIdle) return;
  link->timer_.arm(link->context_.config.pool.keepalive_timeout);  // any byte counts
  link->read_lines();
}

void AgentLink::read_lines() {
  evbuffer* in = bufferevent_get_input(bev_.get());
  while (state_ == State::kIdle) {
    const std::size_t length = evbuffer_get_length(in);
    if (length == 0) return;
    const std::size_t window = std::min(length, limits::kAgentMaxRequestLine);
    const auto* data = reinterpret_cast<const char*>(evbuffer_pullup(in, static_cast<ev_ssize_t>(window)));
    const tunnel::LineSplit split = tunnel::split_line(std::string_view(data, window), limits::kAgentMaxRequestLine);
    if (split.status == tunnel::LineSplit::Status::kNeedMore) return;
    if (split.status != tunnel::LineSplit::Status::kLine) {
      // SECURITY: a line over the limit or ending in a bare LF is a protocol error.
      context_.metrics.requests("none", "bad_request").Increment();
      refuse(tunnel::ErrReason::kBadRequest);
      return;
    }
    const std::string line(data, split.length);
    evbuffer_drain(in, split.length);
    const tunnel::ParsedLine parsed = tunnel::parse_line(line);
    const auto kind = parsed.message ? parsed.message->kind : tunnel::Message::Kind::kOk;
    if (parsed.message && kind == tunnel::Message::Kind::kPing) {
      end_.gateway_spoke = true;
      const std::string_view pong = tunnel::pong_line();
      bufferevent_write(bev_.get(), pong.data(), pong.size());
      continue;
    }
    if (parsed.message && kind == tunnel::Message::Kind::kErr) {
      end_.gateway_err = parsed.message->reason;
      close("the gateway sent ERR " + std::string(tunnel::reason_name(parsed.message->reason)));
      return;
    }
    if (parsed.message && kind == tunnel::Message::Kind::kConnect) {
      end_.gateway_spoke = true;
      const tunnel::ConnectRequest& connect = parsed.message->connect;
      SSL* ssl = bufferevent_openssl_get_ssl(bev_.get());
      if (evbuffer_get_length(in) > 0 || (ssl != nullptr && SSL_has_pending(ssl) == 1)) {
        // SECURITY: nothing may follow a CONNECT before our OK; it would reach the target
        // as if the gateway had sent it after, so such a link carries nothing.
        request_ = connect;
        state_ = State::kRequest;
        owner_.link_leased(*this);
        context_.metrics.requests(tunnel::purpose_name(connect.purpose), "bad_request").Increment();
        refuse(tunnel::ErrReason::kBadRequest);
        return;
      }
      request(connect);
      return;
    }
    // Anything else (OK, PONG, a malformed line): the gateway is not speaking our protocol.
    context_.metrics.requests("none", "bad_request").Increment();
    context_.logger.write(LogLevel::kDebug, "link_protocol_error",
                          {{"gateway", gateway_label_}, {"error", parsed.message ? "unexpected line" : parsed.error}});
    refuse(tunnel::ErrReason::kBadRequest);
    return;
  }
}

nlohmann::json AgentLink::request_fields() const {
  if (!request_) return {{"gateway", gateway_label_}};
  return {{"target", request_->host.to_string() + ":" + std::to_string(request_->port)},
          {"session", request_->session},
          {"purpose", tunnel::purpose_name(request_->purpose)},
          {"gateway", gateway_label_}};
}

void AgentLink::request(const tunnel::ConnectRequest& connect) {
  request_ = connect;
  state_ = State::kRequest;
  request_started_ = std::chrono::steady_clock::now();
  timer_.cancel();
  // The gateway writes nothing before OK; we read nothing until the target connect ends.
  bufferevent_disable(bev_.get(), EV_READ);
  owner_.link_leased(*this);
  const std::string_view purpose = tunnel::purpose_name(connect.purpose);
  context_.logger.write(LogLevel::kDebug, "request", request_fields());
  // SECURITY: the allowlist is the agent's own; nothing the gateway sends widens it. A
  // refused target is never connected to, not even to probe it.
  if (!context_.config.targets.allowed(connect.host, connect.port)) {
    context_.metrics.requests(purpose, "not_allowed").Increment();
    context_.refusals.write("request_refused", request_fields());
    refuse(tunnel::ErrReason::kNotAllowed);
    return;
  }
  connector_ = std::make_unique<TcpConnector>(
      context_.base, context_.dns, connect.host.text, connect.port, context_.config.connect_timeout, true,
      [this](net::UniqueFd fd, TcpConnector::Failure failure, const std::string& detail) {
        target_connected(std::move(fd), failure, detail);
      });
  connector_->start();
}

void AgentLink::target_connected(net::UniqueFd fd, TcpConnector::Failure failure, const std::string& detail) {
  done_connector_ = std::move(connector_);
  const std::string_view purpose = tunnel::purpose_name(request_->purpose);
  if (failure != TcpConnector::Failure::kNone) {
    context_.metrics.requests(purpose, failure_name(failure)).Increment();
    nlohmann::json fields = request_fields();
    fields["result"] = failure_name(failure);
    fields["error"] = detail;
    context_.logger.write(LogLevel::kInfo, "request_failed", fields);
    refuse(reason_for(failure));
    return;
  }
  net::BufferEventPtr target(bufferevent_socket_new(context_.base, fd.get(), BEV_OPT_CLOSE_ON_FREE));
  if (!target) {
    context_.metrics.requests(purpose, "connect_failed").Increment();
    refuse(tunnel::ErrReason::kConnectFailed);  // fd closes with RST (SO_LINGER {1,0})
    return;
  }
  (void)fd.release();
  context_.metrics.requests(purpose, "ok").Increment();
  const std::string_view ok = tunnel::ok_line();
  bufferevent_write(bev_.get(), ok.data(), ok.size());
  state_ = State::kPiped;
  // Read-ahead from here on only: the pipe's relay reads the link until OpenSSL wants more,
  // while the bufferevent that read the idle lines would leave records read ahead unseen.
  tls::tune_for_bulk(bufferevent_openssl_get_ssl(bev_.get()));
  pipe_ = std::make_unique<AgentPipe>(
      context_.base, std::move(bev_), std::move(target), request_->purpose == tunnel::Purpose::kData,
      [this](uint64_t to_target, uint64_t to_gateway) {
        context_.metrics.pipe_bytes("to_target").Increment(static_cast<double>(to_target));
        context_.metrics.pipe_bytes("to_gateway").Increment(static_cast<double>(to_gateway));
      },
      [this](const AgentPipe::End& pipe_end) {
        nlohmann::json fields = request_fields();
        fields["how"] = pipe_end.how;
        fields["to_target"] = pipe_end.to_target;
        fields["to_gateway"] = pipe_end.to_gateway;
        fields["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - request_started_).count();
        if (!pipe_end.error.empty()) fields["error"] = pipe_end.error;
        context_.logger.write(LogLevel::kDebug, "pipe_end", fields);
        end_.detail = pipe_end.how;
        end();
      });
  pipe_->start();
}

void AgentLink::refuse(tunnel::ErrReason reason) {
  const std::string line = tunnel::build_err(reason);
  bufferevent_write(bev_.get(), line.data(), line.size());
  end_.reached = state_;
  end_.detail = "ERR " + std::string(tunnel::reason_name(reason));
  state_ = State::kClosing;
  bufferevent_disable(bev_.get(), EV_READ);
  timer_.arm(kErrFlush);
}

void AgentLink::on_write(bufferevent* bev, void* self) {
  auto* link = static_cast<AgentLink*>(self);
  if (link->state_ != State::kClosing || evbuffer_get_length(bufferevent_get_output(bev)) > 0) return;
  link->say_goodbye();
  link->end();
}

void AgentLink::say_goodbye() {
  // close_notify: the gateway sees a deliberate end, not a cut.
  tls::send_close_notify(bev_.get());
}

void AgentLink::fail_dial(const std::string& result, const std::string& detail) {
  end_.dial_result = result;
  close(detail);
}

void AgentLink::close(const std::string& detail) {
  if (state_ == State::kClosed) return;
  if (state_ != State::kClosing) end_.reached = state_;
  if (end_.detail.empty()) end_.detail = detail;
  end();
}

void AgentLink::drop() {
  if (state_ != State::kDialing && state_ != State::kIdle) return;
  end_.dropped_by_us = true;
  connector_.reset();
  if (state_ == State::kIdle) say_goodbye();
  close("agent draining");
}

void AgentLink::cut() {
  if (state_ == State::kPiped && pipe_) {
    pipe_->cut();  // its done ends the link
    return;
  }
  if (state_ == State::kClosed) return;
  end_.dropped_by_us = true;
  connector_.reset();
  if (bev_) net::reset_on_close(bufferevent_getfd(bev_.get()));
  close("drain_timeout reached");
}

void AgentLink::end() {
  if (state_ == State::kClosed) return;
  if (state_ != State::kClosing) end_.reached = state_;
  state_ = State::kClosed;
  timer_.cancel();
  if (bev_) {
    bufferevent_disable(bev_.get(), EV_READ | EV_WRITE);
    bufferevent_setcb(bev_.get(), nullptr, nullptr, nullptr, nullptr);
  }
  owner_.link_closed(*this, end_);
}

}  // namespace ftpsgate::agent
