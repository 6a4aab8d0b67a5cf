#include "session/upstream_channel.h"

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "ftp/command.h"
#include "ftpsgate/limits.h"
#include "tls/tls_pending.h"
#include "tls/bufferevent_errors.h"
#include "tls/starttls.h"
#include "tls/tls_bufferevent.h"
#include "tls/tls_errors.h"

namespace ftpsgate::session {

UpstreamChannel::UpstreamChannel(const Services& services, const Runtime& runtime, SessionLog& log,
                                 Observer& observer)
    : services_(services),
      runtime_(runtime),
      log_(log),
      observer_(observer),
      lines_(limits::kMaxBackendLine, false),
      timer_(services.base, [this] { server_failed(connecting() ? "connect timeout" : "greeting timeout"); }) {}

backend::BackendPool* UpstreamChannel::pool() const { return runtime_.backend(backend_); }

std::optional<net::SocketAddress> UpstreamChannel::local_address() const {
  if (!bev_) return std::nullopt;
  return net::SocketAddress::local_of(bufferevent_getfd(bev_.get()));
}

// ---------------------------------------------------------------------------------------
// Connecting and failover

void UpstreamChannel::connect(const std::string& backend, const std::string& client_ip, const std::string& user) {
  backend_ = backend;
  order_.clear();
  if (backend::BackendPool* p = pool()) order_ = p->connect_order(client_ip, user);
  next_server_ = 0;
  state_ = State::kConnecting;
  try_next_server();
}

void UpstreamChannel::try_next_server() {
  if (next_server_ >= order_.size()) {
    fail(order_.empty() ? "no healthy backend server" : "no backend server reachable");
    return;
  }
  server_ = order_[next_server_++];
  connect_started_ = std::chrono::steady_clock::now();
  ssl_ = nullptr;
  state_ = State::kConnecting;
  dial_ = services_.dialer->dial(services_.base, server_->target.for_use(net::DialPurpose::kControl, log_.id()),
                                 pool()->config().connect_timeout,
                                 [this](net::Dialed dialed, const std::string& error) {
                                   this->dialed(std::move(dialed), error);
                                 });
}

void UpstreamChannel::dialed(net::Dialed dialed, const std::string& error) {
  dial_.reset();
  backend::BackendPool* p = pool();
  const bool implicit = p->config().tls == BackendTls::kImplicit;
  if (!error.empty()) {
    // Worded as before the dialer: with implicit TLS a refused connect surfaced through
    // the handshake (a timeout is "connect timeout" either way).
    server_failed(implicit && error != net::kDialTimeout ? "TLS handshake with the backend failed: " + error : error);
    return;
  }
  if (dialed.pipe) {
    // An agent's pipe is open already (and never carries FTPS, see --check): the greeting next.
    pipe_lease_ = std::move(dialed.lease);
    bev_ = std::move(dialed.pipe);
    watch();
    connected_to_server();
    pull();  // the greeting may have come with the agent's OK: no read event announces it
    return;
  }
  if (implicit) {
    tls::SslPtr ssl = p->tls()->new_ssl(server_->host, nullptr);
    if (!ssl) {
      server_failed("cannot create TLS state: " + tls::drain_errors());
      return;
    }
    ssl_ = ssl.get();
    state_ = State::kTlsConnecting;
    bev_ = tls::make_tls_bufferevent(services_.base, dialed.fd.release(), std::move(ssl), BUFFEREVENT_SSL_CONNECTING);
  } else {
    bev_.reset(bufferevent_socket_new(services_.base, dialed.fd.get(), BEV_OPT_CLOSE_ON_FREE));
    if (bev_) (void)dialed.fd.release();  // the bufferevent's now
  }
  if (!watch()) {
    server_failed("cannot create the backend connection");
    return;
  }
  if (implicit) {
    // connect_timeout covers TCP and the handshake together: the handshake gets what is left.
    timer_.arm_until(connect_started_ + p->config().connect_timeout);
    return;
  }
  connected_to_server();
}

bool UpstreamChannel::watch() {
  if (!bev_) {
    ssl_ = nullptr;
    return false;
  }
  bufferevent_setcb(bev_.get(), &UpstreamChannel::on_read, nullptr, &UpstreamChannel::on_event, this);
  bufferevent_setwatermark(bev_.get(), EV_READ, 0, limits::kControlReadHighWater);
  return true;
}

void UpstreamChannel::server_failed(const std::string& why) {
  timer_.cancel();
  dial_.reset();
  services_.metrics->backend_connect_failures(backend_, server_->name).Increment();
  log_.log(LogLevel::kWarn, "backend_error", {{"server", server_->name}, {"error", why}});
  if (backend::BackendPool* p = pool()) p->report(*server_, false, why);
  bev_.reset();
  pipe_lease_.reset();
  state_ = State::kConnecting;
  try_next_server();
}

void UpstreamChannel::fail(const std::string& why) {
  timer_.cancel();
  dial_.reset();
  bev_.reset();
  pipe_lease_.reset();
  ssl_ = nullptr;
  state_ = State::kGone;
  observer_.on_upstream_failed(why);
}

void UpstreamChannel::on_event(bufferevent*, short what, void* self) {
  auto* channel = static_cast<UpstreamChannel*>(self);
  if (what & BEV_EVENT_CONNECTED) {
    if (channel->handshaking()) {
      channel->tls_established();
    } else {
      channel->connected_to_server();
    }
    return;
  }
  if (channel->handshaking()) {
    const std::string why =
        "TLS handshake with the backend failed: " +
        tls::client_handshake_error(channel->ssl_, evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    // SECURITY: never a fall-back to clear; implicit: try the next server, explicit: give up.
    if (channel->connecting()) {
      channel->server_failed(why);
    } else {
      channel->fail(why);
    }
    return;
  }
  if (channel->connecting()) {
    channel->server_failed(evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    return;
  }
  // A clean end (close_notify, or FIN in clear): our close_notify answers a TLS one.
  if (what & BEV_EVENT_EOF) tls::send_close_notify(channel->bev_.get());
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) channel->fail("backend closed the control connection");
}

void UpstreamChannel::connected_to_server() {
  timer_.cancel();
  services_.metrics->observe_backend_connect(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - connect_started_).count());
  int one = 1;
  setsockopt(bufferevent_getfd(bev_.get()), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  state_ = State::kGreeting;
  // The greeting must come within connect_timeout too.
  timer_.arm(pool()->config().connect_timeout);
  bufferevent_enable(bev_.get(), EV_READ | EV_WRITE);
}

void UpstreamChannel::handle_greeting(const ftp::Reply& greeting) {
  if (greeting.preliminary()) return;  // 120: ready in a moment
  timer_.cancel();
  if (greeting.code != 220) {
    fail("backend greeting " + std::to_string(greeting.code));
    return;
  }
  backend::BackendPool* p = pool();
  p->report(*server_, true, "");
  lease_ = p->lease(*server_);
  if (p->config().tls == BackendTls::kExplicit) {
    // SECURITY: AUTH TLS whatever FEAT says; a stripped FEAT must not downgrade us (SPEC §3).
    state_ = State::kAuthSent;
    send("AUTH TLS", [this](const ftp::Reply& reply) { setup_step("AUTH", reply); });
    return;
  }
  secured();
}

// ---------------------------------------------------------------------------------------
// FTPS backends: AUTH TLS (explicit) or TLS from the start (implicit), then PBSZ 0 and
// PROT P, all checked, before the client's USER goes up.

void UpstreamChannel::setup_step(const std::string& verb, const ftp::Reply& reply) {
  if (reply.preliminary()) return;
  const std::string said = reply.lines.empty() ? std::to_string(reply.code) : reply.lines.front();
  if (verb == "AUTH") {
    if (reply.code != 234) {
      fail("backend refused AUTH TLS: " + said);
      return;
    }
    start_tls();
    return;
  }
  if (reply.code / 100 != 2) fail("backend refused " + verb + ": " + said);
}

void UpstreamChannel::start_tls() {
  backend::BackendPool* p = pool();
  tls::SslPtr ssl = p->tls()->new_ssl(server_->host, nullptr);
  if (!ssl) {
    fail("cannot create TLS state: " + tls::drain_errors());
    return;
  }
  SSL* const raw = ssl.get();
  // SECURITY: STARTTLS injection from the backend (the upstream twin of the client-side
  // check): bytes after the 234 came in clear and must never pass as replies of the TLS
  // session (every later reply would answer the wrong command).
  switch (tls::start_tls(services_.base, bev_, bufferevent_getfd(bev_.get()), std::move(ssl),
                         BUFFEREVENT_SSL_CONNECTING, lines_.has_pending_input())) {
    case tls::StartTlsResult::kPlaintextBuffered:
      fail("backend sent plaintext after its 234 to AUTH TLS (STARTTLS injection), discarded");
      return;
    case tls::StartTlsResult::kFailed:
      fail("cannot create the backend TLS connection");
      return;
    case tls::StartTlsResult::kStarted:
      break;
  }
  ssl_ = raw;
  state_ = State::kTlsHandshake;
  watch();
  timer_.arm(p->config().connect_timeout);
  bufferevent_enable(bev_.get(), EV_READ | EV_WRITE);
}

void UpstreamChannel::tls_established() {
  log_.log(LogLevel::kDebug, "backend_tls",
           {{"server", server_->name}, {"version", SSL_get_version(ssl_)}, {"cipher", SSL_get_cipher_name(ssl_)}});
  if (state_ == State::kTlsConnecting) {  // implicit: TCP and TLS are up, the greeting follows
    connected_to_server();
    return;
  }
  timer_.cancel();
  secured();
}

void UpstreamChannel::secured() {
  if (ssl_ != nullptr) {
    send("PBSZ 0", [this](const ftp::Reply& reply) { setup_step("PBSZ", reply); });
    send("PROT P", [this](const ftp::Reply& reply) { setup_step("PROT", reply); });
  }
  state_ = State::kReady;
  observer_.on_upstream_ready();
}

// ---------------------------------------------------------------------------------------
// Commands and replies

void UpstreamChannel::send(const std::string& line, ReplyHandler handler) {
  pending_.push_back(std::move(handler));
  write_line(line);
}

void UpstreamChannel::send_and_forget(const std::string& line) { write_line(line); }

void UpstreamChannel::write_line(const std::string& line) {
  if (!bev_) return;
  // SECURITY: a 0xFF the client sent as IAC IAC goes up as IAC IAC, never as a lone IAC
  // the backend would decode as a telnet command.
  const std::string wire = ftp::telnet_escape(line) + "\r\n";
  bufferevent_write(bev_.get(), wire.data(), wire.size());
}

void UpstreamChannel::on_read(bufferevent*, void* self) { static_cast<UpstreamChannel*>(self)->pull(); }

void UpstreamChannel::pull() {
  char chunk[4096];
  // SECURITY: a backend flooding replies to a client that does not read them is not read
  // either while the client's backlog is full (libevent stops at kControlReadHighWater).
  // bev_ is looked up per step: a reply may replace it (AUTH TLS) or drop it (a failure).
  while (bev_ && !observer_.upstream_paused()) {
    if (auto line = lines_.next()) {
      if (line->kind == ftp::LineEvent::Kind::kTooLong) {
        fail("backend sent an over-long reply line");
        return;
      }
      const auto status = replies_.feed_line(line->text);
      if (status == ftp::ReplyAssembler::Status::kComplete) {
        deliver(replies_.take());
      } else if (status != ftp::ReplyAssembler::Status::kNeedMore) {
        fail(status == ftp::ReplyAssembler::Status::kMalformed ? "malformed backend reply" : "backend reply too large");
        return;
      }
      continue;
    }
    evbuffer* in = bufferevent_get_input(bev_.get());
    const int n = evbuffer_remove(in, chunk, sizeof(chunk));
    if (n <= 0) {
      if (!tls::take_tls_pending(ssl(), in)) return;
      continue;
    }
    lines_.feed(std::string_view(chunk, static_cast<size_t>(n)));
  }
}

void UpstreamChannel::deliver(ftp::Reply reply) {
  if (state_ == State::kGreeting) {
    handle_greeting(reply);
    return;
  }
  if (pending_.empty()) {
    observer_.on_upstream_unsolicited(reply);
    return;
  }
  if (reply.preliminary()) {
    const ReplyHandler handler = pending_.front();  // a copy: the handler may queue more
    handler(reply);
  } else {
    const ReplyHandler handler = std::move(pending_.front());
    pending_.pop_front();
    handler(reply);
  }
  observer_.on_upstream_reply_handled();
}

void UpstreamChannel::close() {
  timer_.cancel();
  dial_.reset();
  tls::send_close_notify(bev_.get());
  bev_.reset();
  pipe_lease_.reset();
  ssl_ = nullptr;
  if (state_ != State::kIdle) state_ = State::kGone;
}

void UpstreamChannel::stop() {
  timer_.cancel();
  dial_.reset();
  if (bev_) bufferevent_disable(bev_.get(), EV_READ | EV_WRITE);
}

}  // namespace ftpsgate::session
