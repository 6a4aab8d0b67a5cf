#include "session/downstream_channel.h"

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#include "ftp/reply.h"
#include "ftpsgate/limits.h"
#include "policy/refusal.h"
#include "tls/client_fingerprint.h"
#include "tls/tls_pending.h"
#include "tls/bufferevent_errors.h"
#include "tls/starttls.h"
#include "tls/tls_errors.h"

namespace ftpsgate::session {

DownstreamChannel::DownstreamChannel(const Services& services, const Runtime& runtime, SessionLog& log,
                                     net::UniqueFd fd, Observer& observer)
    : services_(services),
      runtime_(runtime),
      log_(log),
      observer_(observer),
      lines_(runtime.config.limits.max_line),
      handshake_timer_(services.base,
                       [this] {
                         log_.log(LogLevel::kInfo, "tls_handshake", {{"channel", "control"}, {"result", "timeout"}});
                         services_.metrics->tls_handshakes("control", "unknown", "timeout").Increment();
                         services_.metrics->policy_denials(policy::reason_name(policy::Refusal::kHandshakeTimeout)).Increment();
                         observer_.on_downstream_closed();
                       }),
      close_timer_(services.base, [this] { observer_.on_downstream_closed(); }),
      fd_(std::move(fd)) {
  int one = 1;
  // Telnet "Synch" (ABOR with urgent data, RFC 959 §4.1.3) must stay in the byte stream.
  setsockopt(fd_.get(), SOL_SOCKET, SO_OOBINLINE, &one, sizeof(one));
  setsockopt(fd_.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  evutil_make_socket_nonblocking(fd_.get());
}

void DownstreamChannel::start_clear() { attach_plain(); }

void DownstreamChannel::start_tls() { switch_to_tls(); }

void DownstreamChannel::attach() {
  if (!bev_) return;
  bufferevent_setcb(bev_.get(), &DownstreamChannel::on_read, &DownstreamChannel::on_write,
                    &DownstreamChannel::on_event, this);
  bufferevent_setwatermark(bev_.get(), EV_READ, 0, limits::kControlReadHighWater);
  bufferevent_enable(bev_.get(), EV_READ | EV_WRITE);
}

void DownstreamChannel::attach_plain() {
  // No BEV_OPT_CLOSE_ON_FREE: the descriptor outlives this bufferevent (AUTH TLS, CCC).
  bev_.reset(bufferevent_socket_new(services_.base, fd_.get(), 0));
  attach();
}

// ---------------------------------------------------------------------------------------
// Input

void DownstreamChannel::on_read(bufferevent* bev, void* self) {
  auto* channel = static_cast<DownstreamChannel*>(self);
  if (channel->closing_) {
    evbuffer* in = bufferevent_get_input(bev);
    evbuffer_drain(in, evbuffer_get_length(in));
    return;
  }
  channel->observer_.on_downstream_input();
}

void DownstreamChannel::pull() {
  if (!bev_ || closing_) return;
  evbuffer* in = bufferevent_get_input(bev_.get());
  // One line at a time, and only while few wait: the rest stays in the input buffer and,
  // past kControlReadHighWater, in the client's socket (see kMaxPendingLines).
  while (lines_.ready_lines() + held_.size() < limits::kMaxPendingLines && !backlogged()) {
    if (transport_ == Transport::kClearAfterCcc && skip_peer_close_notify(in)) return;
    if (evbuffer_get_length(in) == 0 && !tls::take_tls_pending(protected_now() ? ssl_.get() : nullptr, in)) return;
    evbuffer_iovec chunk{};
    if (evbuffer_peek(in, -1, nullptr, &chunk, 1) < 1 || chunk.iov_len == 0) return;
    const std::size_t used =
        lines_.feed_until_line(std::string_view(static_cast<const char*>(chunk.iov_base), chunk.iov_len));
    evbuffer_drain(in, used);
  }
}

std::optional<ftp::LineEvent> DownstreamChannel::next_line() {
  if (!held_.empty()) {
    ftp::LineEvent line = std::move(held_.front());
    held_.pop_front();
    return line;
  }
  return lines_.next();
}

bool DownstreamChannel::has_unread_input() const {
  return lines_.has_pending_input() || !held_.empty() ||
         (bev_ && evbuffer_get_length(bufferevent_get_input(bev_.get())) > 0);
}

bool DownstreamChannel::backlogged() const {
  return bev_ && evbuffer_get_length(bufferevent_get_output(bev_.get())) >= limits::kMaxDownstreamBacklog;
}

// ---------------------------------------------------------------------------------------
// Output

void DownstreamChannel::send(const std::string& wire) {
  if (!bev_) return;
  bufferevent_write(bev_.get(), wire.data(), wire.size());
}

void DownstreamChannel::reply(int code, std::string_view text) { send(ftp::make_reply(code, text)); }

void DownstreamChannel::on_write(bufferevent* bev, void* self) {
  auto* channel = static_cast<DownstreamChannel*>(self);
  if (evbuffer_get_length(bufferevent_get_output(bev)) != 0) return;
  if (channel->closing_) {
    channel->finish_close();
    return;
  }
  if (channel->transport_ == Transport::kTlsSwitchPending) {
    channel->switch_to_tls();
    return;
  }
  if (channel->transport_ == Transport::kClearPending) {
    channel->clear_transport();
    return;
  }
  channel->observer_.on_downstream_drained();
}

// ---------------------------------------------------------------------------------------
// Transport switches

void DownstreamChannel::begin_tls(const std::string& wire) {
  bufferevent_disable(bev_.get(), EV_READ);
  transport_ = Transport::kTlsSwitchPending;
  send(wire);
  // switch_to_tls() runs from on_write once the 234 has left.
  bufferevent_setwatermark(bev_.get(), EV_WRITE, 0, 0);
}

void DownstreamChannel::switch_to_tls() {
  ssl_ = runtime_.tls->new_ssl();
  if (!ssl_) {
    log_.log(LogLevel::kError, "tls_handshake", {{"channel", "control"}, {"error", tls::drain_errors()}});
    observer_.on_downstream_closed();
    return;
  }
  tls::attach_control(ssl_.get(), &binding_);
  // SECURITY: STARTTLS injection. AUTH was refused already if anything followed it in
  // clear, and reading stopped at AUTH; checked again where the swap happens.
  const bool unread = lines_.has_pending_input() || !held_.empty();
  if (tls::start_tls(services_.base, bev_, fd_.get(), ssl_.get(), BUFFEREVENT_SSL_ACCEPTING, unread) !=
      tls::StartTlsResult::kStarted) {
    bev_.reset();
    observer_.on_downstream_closed();
    return;
  }
  transport_ = Transport::kHandshaking;
  attach();
  handshake_timer_.arm(runtime_.config.limits.handshake_timeout);
}

void DownstreamChannel::handshake_done() {
  transport_ = Transport::kTls;
  handshake_timer_.cancel();
  SSL* ssl = ssl_.get();
  tls::bind_control_handshake(ssl);
  services_.metrics->tls_handshakes("control", SSL_get_version(ssl), "success").Increment();
  nlohmann::json fields = {{"channel", "control"},
                           {"version", SSL_get_version(ssl)},
                           {"cipher", SSL_get_cipher_name(ssl)},
                           {"resumed", SSL_session_reused(ssl) == 1},
                           {"fingerprint", tls::client_fingerprint(ssl)}};
  tls::X509Ptr peer(SSL_get1_peer_certificate(ssl));
  if (peer) {
    char subject[512] = {};
    X509_NAME_oneline(X509_get_subject_name(peer.get()), subject, sizeof(subject));
    fields["client_cert"] = subject;
    fields["client_cert_verified"] = SSL_get_verify_result(ssl) == X509_V_OK;
  }
  log_.log(LogLevel::kInfo, "tls_handshake", fields);
  observer_.on_downstream_tls(ssl);
}

void DownstreamChannel::handshake_failed(bufferevent* bev) {
  const std::string error = tls::drain_bufferevent_errors(bev, "connection closed during handshake");
  // A connection that closes before sending a single TLS byte is a TCP probe (load
  // balancer, Kubernetes tcpSocket, a port scan), not a failed handshake: counted apart
  // so that probes do not feed the handshake failure alert, and logged at debug.
  BIO* rbio = ssl_ ? SSL_get_rbio(ssl_.get()) : nullptr;
  if (rbio != nullptr && BIO_number_read(rbio) == 0) {
    services_.metrics->tls_handshakes("control", "unknown", "no_data").Increment();
    log_.log(LogLevel::kDebug, "tls_handshake", {{"channel", "control"}, {"result", "no_data"}, {"error", error}});
    observer_.on_downstream_closed();
    return;
  }
  services_.metrics->tls_handshakes("control", "unknown", "failure").Increment();
  nlohmann::json fields = {{"channel", "control"}, {"result", "failure"}, {"error", error}};
  if (const std::string fingerprint = tls::client_fingerprint(ssl_.get()); !fingerprint.empty()) {
    fields["fingerprint"] = fingerprint;
  }
  const long verify = ssl_ ? SSL_get_verify_result(ssl_.get()) : X509_V_OK;
  if (verify != X509_V_OK) fields["verify_error"] = X509_verify_cert_error_string(verify);
  log_.log(LogLevel::kInfo, "tls_handshake", fields);
  observer_.on_downstream_closed();
}

void DownstreamChannel::on_event(bufferevent* bev, short what, void* self) {
  auto* channel = static_cast<DownstreamChannel*>(self);
  if (what & BEV_EVENT_CONNECTED) {
    channel->handshake_done();
    return;
  }
  if (channel->transport_ == Transport::kHandshaking) {
    channel->handshake_failed(bev);
    return;
  }
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
    channel->log_.log(LogLevel::kDebug, "client_closed");
    channel->observer_.on_downstream_closed();
  }
}

void DownstreamChannel::begin_clear(const std::string& wire) {
  transport_ = Transport::kClearPending;
  bufferevent_disable(bev_.get(), EV_READ);
  send(wire);
}

void DownstreamChannel::clear_transport() {
  // RFC 4217 §12.3: our close_notify ends TLS on the control connection; the TLS session
  // itself stays valid, so protected data connections keep resuming it.
  // Lines pipelined behind CCC came over TLS and stay queued, in order (at most the read
  // watermark and one record: reading stopped at CCC).
  evbuffer* in = bufferevent_get_input(bev_.get());
  while (evbuffer_get_length(in) > 0 || tls::take_tls_pending(ssl_.get(), in)) {
    evbuffer_iovec chunk{};
    if (evbuffer_peek(in, -1, nullptr, &chunk, 1) < 1 || chunk.iov_len == 0) break;
    lines_.feed(std::string_view(static_cast<const char*>(chunk.iov_base), chunk.iov_len));
    evbuffer_drain(in, chunk.iov_len);
  }
  SSL_shutdown(ssl_.get());
  tls::drain_errors();
  bev_.reset();
  ssl_.reset();
  transport_ = Transport::kClearAfterCcc;
  attach_plain();
  log_.log(LogLevel::kInfo, "ccc", {{"message", "control channel continues in clear"}});
  observer_.on_downstream_input();
}

bool DownstreamChannel::skip_peer_close_notify(evbuffer* in) {
  // Clients that answer our close_notify (curl's active CCC mode) send one TLS record
  // before the first plaintext command; clients that do not, start with a letter.
  const size_t available = evbuffer_get_length(in);
  if (available == 0) return false;
  unsigned char header[5];
  evbuffer_copyout(in, header, std::min<size_t>(available, sizeof(header)));
  // TLS 1.2 sends the alert as a 0x15 record; TLS 1.3 hides it in an encrypted 0x17 record.
  // A plaintext FTP command never starts with either byte.
  if (header[0] != 0x15 && header[0] != 0x17) {
    transport_ = Transport::kClear;
    return false;
  }
  if (available < sizeof(header)) return true;
  const size_t record = sizeof(header) + ((static_cast<size_t>(header[3]) << 8) | header[4]);
  if (available < record) return true;
  evbuffer_drain(in, record);
  transport_ = Transport::kClear;
  return false;
}

void DownstreamChannel::issue_session_ticket() {
  if (!protected_now() || !ssl_) return;
  if (SSL_version(ssl_.get()) >= TLS1_3_VERSION) SSL_new_session_ticket(ssl_.get());
}

// ---------------------------------------------------------------------------------------
// Closing

void DownstreamChannel::close_after_flush() {
  if (closing_) return;
  closing_ = true;
  if (!bev_ || evbuffer_get_length(bufferevent_get_output(bev_.get())) == 0) {
    finish_close();
    return;
  }
  bufferevent_disable(bev_.get(), EV_READ);
  bufferevent_setwatermark(bev_.get(), EV_WRITE, 0, 0);
  close_timer_.arm(limits::kCloseFlushTimeout);
}

void DownstreamChannel::finish_close() {
  // Our last reply is out: close_notify tells the client the end is ours and intended
  // (and OpenSSL keeps the TLS session resumable only after a clean shutdown).
  if (protected_now() && ssl_) {
    SSL_shutdown(ssl_.get());
    tls::drain_errors();
  }
  observer_.on_downstream_closed();
}

void DownstreamChannel::stop() {
  closing_ = true;
  handshake_timer_.cancel();
  close_timer_.cancel();
  if (bev_) bufferevent_disable(bev_.get(), EV_READ | EV_WRITE);
}

}  // namespace ftpsgate::session
