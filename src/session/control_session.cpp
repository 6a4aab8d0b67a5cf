#include "session/control_session.h"

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#include "ftp/address_codec.h"
#include "ftp/feat.h"
#include "policy/client_class.h"
#include "tls/bufferevent_errors.h"
#include "tls/openssl_handles.h"
#include "tls/tls_bufferevent.h"
#include "tls/tls_errors.h"

namespace ftpsgate::session {

namespace {

// SECURITY: unbounded buffering (a client pipelining NOOP or FEAT without reading its
// replies, a backend flooding replies, pipelining behind a slow backend): the control
// channel is a bounded pipe both ways, as in nginx/HAProxy. At most kMaxPendingLines parsed
// command lines wait for their turn, no command is taken while kMaxDownstreamBacklog reply
// bytes wait for the client (nor a backend reply read), and libevent stops reading a control
// connection at kControlReadHighWater unread bytes; the rest waits in the peer's socket.
constexpr std::size_t kMaxPendingLines = 16;
constexpr std::size_t kMaxDownstreamBacklog = 32 * 1024;
constexpr std::size_t kControlReadHighWater = 16 * 1024;
constexpr std::size_t kMaxBackendLine = 8192;
constexpr std::chrono::milliseconds kCloseFlushTimeout{5000};

const char* const kBackendUnreachable = "Service not available, backend unreachable";

bool is_download(const std::string& verb) {
  return verb == "RETR" || verb == "LIST" || verb == "NLST" || verb == "MLSD";
}
bool is_upload(const std::string& verb) { return verb == "STOR" || verb == "APPE" || verb == "STOU"; }

std::string upper(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::toupper(c); });
  return out;
}

// libevent stops an SSL_read at the read watermark and leaves the rest of the record in
// OpenSSL, where no socket event announces it: moves up to one chunk of it into `in`.
bool take_tls_pending(SSL* ssl, evbuffer* in) {
  if (ssl == nullptr || SSL_pending(ssl) <= 0) return false;
  char chunk[4096];
  const int n = SSL_read(ssl, chunk, std::min<int>(SSL_pending(ssl), static_cast<int>(sizeof(chunk))));
  if (n <= 0) {
    tls::drain_errors();
    return false;
  }
  evbuffer_add(in, chunk, static_cast<size_t>(n));
  return true;
}

// Events that belong in tls.log when one is configured (ProFTPD's TLSLog).
bool is_tls_event(std::string_view event, const nlohmann::json& fields) {
  if (event == "tls_handshake" || event == "ccc") return true;
  if (event != "policy_denial" || !fields.contains("reason")) return false;
  const auto reason = fields["reason"].get<std::string>();
  return reason == "session_reuse_required" || reason == "session_foreign" ||
         reason == "client_certificate_required" || reason == "starttls_injection";
}

}  // namespace

ControlSession::ControlSession(const Services& services, std::shared_ptr<Runtime> runtime,
                               const ListenerConfig& listener, const ClassConfig& cls, uint64_t id,
                               evutil_socket_t fd, net::SocketAddress client, net::SocketAddress local,
                               net::SocketAddress advertised, RetireFn retire)
    : services_(services),
      runtime_(std::move(runtime)),
      listener_(listener),
      class_(cls),
      id_(id),
      client_(client),
      local_(local),
      advertised_(std::move(advertised)),
      client_ip_(client.ip()),
      retire_(std::move(retire)),
      down_lines_(runtime_->config.limits.max_line),
      up_lines_(kMaxBackendLine, false),
      login_timer_(services.base,
                   [this] {
                     deny("login_timeout", "", 421, "Login timeout, closing control connection");
                     close_after_flush();
                   }),
      idle_timer_(services.base,
                  [this] {
                    if (transfer_) {
                      idle_timer_.arm(runtime_->config.limits.idle_timeout);
                      return;
                    }
                    deny("idle_timeout", "", 421, "Idle timeout, closing control connection");
                    close_after_flush();
                  }),
      handshake_timer_(services.base,
                       [this] {
                         log(LogLevel::kInfo, "tls_handshake",
                             {{"channel", "control"}, {"result", "timeout"}});
                         services_.metrics->tls_handshakes("control", "unknown", "timeout").Increment();
                         services_.metrics->policy_denials("handshake_timeout").Increment();
                         close_now();
                       }),
      backend_timer_(services.base,
                     [this] {
                       server_failed(phase_ == Phase::kConnecting ? "connect timeout" : "greeting timeout");
                     }),
      close_timer_(services.base, [this] { close_now(); }),
      login_delay_timer_(services.base,
                         [this] {
                           send_down(*held_login_reply_);
                           held_login_reply_.reset();
                           process_lines();
                         }),
      reaper_(services.base, [this] { retired_data_.clear(); }),
      down_fd_(fd) {}

ControlSession::~ControlSession() {
  data_.reset();
  up_.reset();
  down_.reset();
  down_ssl_.reset();
  if (down_fd_ >= 0) close(down_fd_);
}

void ControlSession::start() {
  services_.metrics->sessions_total(listener_.name, class_.name).Increment();
  services_.metrics->sessions_active(listener_.name).Increment();
  log(LogLevel::kInfo, "session_start", {{"worker", services_.worker}});
  int one = 1;
  // Telnet "Synch" (ABOR with urgent data, RFC 959 §4.1.3) must stay in the byte stream.
  setsockopt(down_fd_, SOL_SOCKET, SO_OOBINLINE, &one, sizeof(one));
  setsockopt(down_fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  evutil_make_socket_nonblocking(down_fd_);
  login_timer_.arm(runtime_->config.limits.login_timeout);
  if (listener_.mode == ListenerMode::kImplicit) {
    prot_private_ = true;
    switch_to_tls();
    return;
  }
  attach_plain_downstream();
  // The greeting is ours and immediate: no backend is contacted before USER passes policy.
  reply(220, listener_.banner);
}

// ---------------------------------------------------------------------------------------
// Downstream control channel

void ControlSession::on_down_read(bufferevent* bev, void* self) {
  auto* session = static_cast<ControlSession*>(self);
  evbuffer* in = bufferevent_get_input(bev);
  if (session->closing_) {
    evbuffer_drain(in, evbuffer_get_length(in));
    return;
  }
  session->process_lines();
}

void ControlSession::pull_input() {
  if (!down_ || closing_) return;
  evbuffer* in = bufferevent_get_input(down_.get());
  // One line at a time, and only while few wait: the rest stays in the input buffer and,
  // past kControlReadHighWater, in the client's socket (see kMaxPendingLines).
  while (down_lines_.ready_lines() + deferred_.size() < kMaxPendingLines && !downstream_backlogged()) {
    if (peer_close_notify_possible_ && skip_peer_close_notify(in)) return;
    if (evbuffer_get_length(in) == 0 && !take_tls_pending(control_tls_ ? down_ssl_.get() : nullptr, in)) return;
    evbuffer_iovec chunk{};
    if (evbuffer_peek(in, -1, nullptr, &chunk, 1) < 1 || chunk.iov_len == 0) return;
    const std::size_t used =
        down_lines_.feed_until_line(std::string_view(static_cast<const char*>(chunk.iov_base), chunk.iov_len));
    evbuffer_drain(in, used);
  }
}

bool ControlSession::downstream_backlogged() const {
  return down_ && evbuffer_get_length(bufferevent_get_output(down_.get())) >= kMaxDownstreamBacklog;
}

bool ControlSession::busy() const {
  return closing_ || handshaking_ || tls_switch_pending_ || ccc_pending_ || held_login_reply_.has_value() || phase_ == Phase::kConnecting ||
         phase_ == Phase::kBackendGreeting || !expectations_.empty() || transfer_.has_value() ||
         deferred_answer_.has_value();
}

void ControlSession::process_lines() {
  while (!closing_) {
    pull_input();
    if (busy()) {
      // During a transfer only ABOR is acted on at once; other lines wait their turn.
      if (!transfer_ || handshaking_ || tls_switch_pending_) break;
      auto event = down_lines_.next();
      if (!event) break;
      if (event->kind == ftp::LineEvent::Kind::kLine) {
        auto cmd = ftp::parse_command(event->text);
        if (cmd && cmd->verb == "ABOR") {
          handle_abort();
          continue;
        }
      }
      // Bounded by pull_input: kMaxPendingLines counts these too.
      deferred_.push_back(std::move(*event));
      continue;
    }
    // SECURITY: a client that leaves its replies unread gets no more until it reads them.
    if (downstream_backlogged()) break;
    std::optional<ftp::LineEvent> event;
    if (!deferred_.empty()) {
      event = std::move(deferred_.front());
      deferred_.pop_front();
    } else {
      event = down_lines_.next();
    }
    if (!event) break;
    handle_line(*event);
  }
}

void ControlSession::handle_line(const ftp::LineEvent& line) {
  if (phase_ == Phase::kLoggedIn) idle_timer_.arm(runtime_->config.limits.idle_timeout);
  if (line.kind == ftp::LineEvent::Kind::kTooLong) {
    deny("line_too_long", "", 500, "Command line too long");
    return;
  }
  auto cmd = ftp::parse_command(line.text);
  if (!cmd) {
    reply(500, "Syntax error, command unrecognized");
    return;
  }
  if (services_.logger->enabled(LogLevel::kDebug)) {
    log(LogLevel::kDebug, "command", {{"command", ftp::redact_for_log(*cmd)}});
  }
  handle_command(*cmd);
}

void ControlSession::handle_command(const ftp::Command& cmd) {
  const std::string& verb = cmd.verb;
  if (verb == "AUTH") return handle_auth(cmd);
  if (verb == "PBSZ") return handle_pbsz(cmd);
  if (verb == "PROT") return handle_prot(cmd);
  if (verb == "CCC") return handle_ccc();
  if (verb == "FEAT") return handle_feat();
  if (verb == "HOST") return handle_host(cmd);
  if (verb == "QUIT") return handle_quit();
  if (verb == "USER") return handle_user(cmd);
  if (verb == "PASS" || verb == "ACCT") return handle_pass(cmd);
  if (verb == "NOOP" && phase_ != Phase::kLoggedIn) {
    reply(200, "NOOP ok");  // keep-alives work before a backend exists
    return;
  }
  if (phase_ != Phase::kLoggedIn) {
    if (phase_ == Phase::kLogin && !refused_by_policy(policy::CommandKind::kOther, cmd)) {
      // e.g. a command between USER and PASS: the backend answers (530/503).
      return relay_command(cmd, verb + (cmd.argument.empty() ? "" : " " + cmd.argument));
    }
    if (phase_ != Phase::kLogin) reply(530, "Please login with USER and PASS");
    return;
  }
  if (verb == "PASV") return handle_passive(cmd, false);
  if (verb == "EPSV") return handle_passive(cmd, true);
  if (verb == "PORT") return handle_active(cmd, false);
  if (verb == "EPRT") return handle_active(cmd, true);
  if (verb == "LPRT" || verb == "LPSV") {
    reply(502, "Command not implemented; use EPSV or EPRT");
    return;
  }
  if (is_download(verb)) return handle_transfer(cmd, data::Direction::kDownload);
  if (is_upload(verb)) return handle_transfer(cmd, data::Direction::kUpload);
  if (verb == "ABOR") {
    if (refused_by_policy(policy::CommandKind::kOther, cmd)) return;
    return relay_command(cmd, "ABOR");
  }
  if (refused_by_policy(policy::CommandKind::kOther, cmd)) return;
  relay_command(cmd, verb + (cmd.argument.empty() ? "" : " " + cmd.argument));
}

bool ControlSession::refused_by_policy(policy::CommandKind kind, const ftp::Command& cmd) {
  policy::ChannelState state{control_tls_, phase_ == Phase::kLoggedIn, prot_private_};
  const auto decision = policy::check(tls_required(), kind, state);
  if (decision.allowed) return false;
  deny(decision.reason, cmd.verb, decision.code, decision.message);
  return true;
}

void ControlSession::handle_auth(const ftp::Command& cmd) {
  if (control_tls_) {
    reply(503, "Already using TLS");
    return;
  }
  if (phase_ != Phase::kAwaitUser) {
    reply(503, "AUTH must come before USER");
    return;
  }
  const std::string mechanism = upper(cmd.argument);
  if (mechanism != "TLS" && mechanism != "SSL" && mechanism != "TLS-C" && mechanism != "TLS-P") {
    reply(504, "AUTH mechanism not supported");
    return;
  }
  // SECURITY: STARTTLS command injection (CVE-2011-0411 class). Bytes pipelined after
  // AUTH arrived in clear and must never be executed as if they came over TLS.
  if (down_lines_.has_pending_input() || !deferred_.empty() ||
      evbuffer_get_length(bufferevent_get_input(down_.get())) > 0) {
    services_.metrics->policy_denials("starttls_injection").Increment();
    log(LogLevel::kWarn, "policy_denial",
        {{"reason", "starttls_injection"}, {"command", "AUTH"},
         {"message", "plaintext pipelined after AUTH, closing connection"}});
    close_now();
    return;
  }
  if (mechanism == "SSL" || mechanism == "TLS-P") prot_private_ = true;  // RFC 4217 §4 legacy semantics
  bufferevent_disable(down_.get(), EV_READ);
  tls_switch_pending_ = true;
  reply(234, "AUTH " + mechanism + " successful");
  // switch_to_tls() runs from on_down_write once the 234 has left.
  bufferevent_setwatermark(down_.get(), EV_WRITE, 0, 0);
}

void ControlSession::on_down_write(bufferevent* bev, void* self) {
  auto* session = static_cast<ControlSession*>(self);
  if (evbuffer_get_length(bufferevent_get_output(bev)) != 0) return;
  if (session->closing_) {
    session->close_flushed();
    return;
  }
  if (session->tls_switch_pending_) {
    session->switch_to_tls();
    return;
  }
  if (session->ccc_pending_) {
    session->clear_control_channel();
    return;
  }
  // The client read its replies: backend replies and commands held back meanwhile follow.
  session->pull_upstream();
  session->process_lines();
}

void ControlSession::clear_control_channel() {
  ccc_pending_ = false;
  // RFC 4217 §12.3: our close_notify ends TLS on the control connection; the TLS session
  // itself stays valid, so protected data connections keep resuming it.
  // Lines pipelined behind CCC came over TLS and stay queued, in order (at most the read
  // watermark and one record: reading stopped at CCC).
  evbuffer* in = bufferevent_get_input(down_.get());
  while (evbuffer_get_length(in) > 0 || take_tls_pending(down_ssl_.get(), in)) {
    evbuffer_iovec chunk{};
    if (evbuffer_peek(in, -1, nullptr, &chunk, 1) < 1 || chunk.iov_len == 0) break;
    down_lines_.feed(std::string_view(static_cast<const char*>(chunk.iov_base), chunk.iov_len));
    evbuffer_drain(in, chunk.iov_len);
  }
  SSL_shutdown(down_ssl_.get());
  tls::drain_errors();
  down_.reset();
  down_ssl_.reset();
  control_tls_ = false;
  peer_close_notify_possible_ = true;
  attach_plain_downstream();
  log(LogLevel::kInfo, "ccc", {{"message", "control channel continues in clear"}});
  process_lines();
}

bool ControlSession::skip_peer_close_notify(evbuffer* in) {
  // Clients that answer our close_notify (curl's active CCC mode) send one TLS record
  // before the first plaintext command; clients that do not, start with a letter.
  const size_t available = evbuffer_get_length(in);
  if (available == 0) return false;
  unsigned char header[5];
  evbuffer_copyout(in, header, std::min<size_t>(available, sizeof(header)));
  // TLS 1.2 sends the alert as a 0x15 record; TLS 1.3 hides it in an encrypted 0x17 record.
  // A plaintext FTP command never starts with either byte.
  if (header[0] != 0x15 && header[0] != 0x17) {
    peer_close_notify_possible_ = false;
    return false;
  }
  if (available < sizeof(header)) return true;
  const size_t record = sizeof(header) + ((static_cast<size_t>(header[3]) << 8) | header[4]);
  if (available < record) return true;
  evbuffer_drain(in, record);
  peer_close_notify_possible_ = false;
  return false;
}

void ControlSession::attach_plain_downstream() {
  // No BEV_OPT_CLOSE_ON_FREE: the descriptor outlives this bufferevent (AUTH TLS, CCC).
  down_.reset(bufferevent_socket_new(services_.base, down_fd_, 0));
  bufferevent_setcb(down_.get(), &ControlSession::on_down_read, &ControlSession::on_down_write,
                    &ControlSession::on_down_event, this);
  bufferevent_setwatermark(down_.get(), EV_READ, 0, kControlReadHighWater);
  bufferevent_enable(down_.get(), EV_READ | EV_WRITE);
}

void ControlSession::switch_to_tls() {
  tls_switch_pending_ = false;
  down_.reset();
  down_ssl_ = runtime_->tls->new_ssl();
  if (!down_ssl_) {
    log(LogLevel::kError, "tls_handshake", {{"channel", "control"}, {"error", tls::drain_errors()}});
    close_now();
    return;
  }
  tls::attach_control(down_ssl_.get(), &binding_);
  down_.reset(
      bufferevent_openssl_socket_new(services_.base, down_fd_, down_ssl_.get(), BUFFEREVENT_SSL_ACCEPTING, 0));
  if (!down_) {
    close_now();
    return;
  }
  handshaking_ = true;
  handshake_timer_.arm(runtime_->config.limits.handshake_timeout);
  bufferevent_setcb(down_.get(), &ControlSession::on_down_read, &ControlSession::on_down_write,
                    &ControlSession::on_down_event, this);
  bufferevent_setwatermark(down_.get(), EV_READ, 0, kControlReadHighWater);
  bufferevent_enable(down_.get(), EV_READ | EV_WRITE);
}

void ControlSession::control_handshake_done() {
  handshaking_ = false;
  control_tls_ = true;
  handshake_timer_.cancel();
  SSL* ssl = down_ssl_.get();
  tls::bind_control_handshake(ssl);
  services_.metrics->tls_handshakes("control", SSL_get_version(ssl), "success").Increment();
  nlohmann::json fields = {{"channel", "control"},
                           {"version", SSL_get_version(ssl)},
                           {"cipher", SSL_get_cipher_name(ssl)},
                           {"resumed", SSL_session_reused(ssl) == 1}};
  tls::X509Ptr peer(SSL_get1_peer_certificate(ssl));
  if (peer) {
    char subject[512] = {};
    X509_NAME_oneline(X509_get_subject_name(peer.get()), subject, sizeof(subject));
    fields["client_cert"] = subject;
    fields["client_cert_verified"] = SSL_get_verify_result(ssl) == X509_V_OK;
  }
  log(LogLevel::kInfo, "tls_handshake", fields);
  // SECURITY: a class that requires a verified client certificate is enforced here even
  // when the TLS level only asked for one (another class made it optional).
  const VerifyClient required = class_.verify_client.value_or(runtime_->config.tls.verify_client);
  if (required == VerifyClient::kOn && (!peer || SSL_get_verify_result(ssl) != X509_V_OK)) {
    deny("client_certificate_required", "AUTH", 421, "A valid client certificate is required",
         "client did not present a valid certificate, closing connection (see the verify_client option)");
    close_after_flush();
    return;
  }
  if (listener_.mode == ListenerMode::kImplicit) reply(220, listener_.banner);
  process_lines();
}

void ControlSession::on_down_event(bufferevent* bev, short what, void* self) {
  auto* session = static_cast<ControlSession*>(self);
  if (what & BEV_EVENT_CONNECTED) {
    session->control_handshake_done();
    return;
  }
  if (session->handshaking_) {
    const std::string error = tls::drain_bufferevent_errors(bev, "connection closed during handshake");
    // A connection that closes before sending a single TLS byte is a TCP probe (load
    // balancer, Kubernetes tcpSocket, a port scan), not a failed handshake: counted apart
    // so that probes do not feed the handshake failure alert, and logged at debug.
    SSL* ssl = session->down_ssl_.get();
    BIO* rbio = ssl != nullptr ? SSL_get_rbio(ssl) : nullptr;
    if (rbio != nullptr && BIO_number_read(rbio) == 0) {
      session->services_.metrics->tls_handshakes("control", "unknown", "no_data").Increment();
      session->log(LogLevel::kDebug, "tls_handshake", {{"channel", "control"}, {"result", "no_data"}, {"error", error}});
      session->close_now();
      return;
    }
    session->services_.metrics->tls_handshakes("control", "unknown", "failure").Increment();
    nlohmann::json fields = {{"channel", "control"}, {"result", "failure"}, {"error", error}};
    const long verify = session->down_ssl_ ? SSL_get_verify_result(session->down_ssl_.get()) : X509_V_OK;
    if (verify != X509_V_OK) fields["verify_error"] = X509_verify_cert_error_string(verify);
    session->log(LogLevel::kInfo, "tls_handshake", fields);
    session->close_now();
    return;
  }
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
    session->log(LogLevel::kDebug, "client_closed");
    session->close_now();
  }
}

void ControlSession::handle_pbsz(const ftp::Command& cmd) {
  if (!control_tls_) {
    reply(503, "PBSZ requires AUTH first");
    return;
  }
  if (cmd.argument.empty() || !std::all_of(cmd.argument.begin(), cmd.argument.end(), ::isdigit)) {
    reply(501, "PBSZ requires a numeric argument");
    return;
  }
  reply(200, "PBSZ=0");
}

void ControlSession::handle_prot(const ftp::Command& cmd) {
  if (!control_tls_) {
    reply(503, "PROT requires AUTH first");
    return;
  }
  const std::string level = upper(cmd.argument);
  if (level == "C") {
    if (refused_by_policy(policy::CommandKind::kProtClear, cmd)) return;
    prot_private_ = false;
    reply(200, "Protection level set to C");
  } else if (level == "P") {
    if (refused_by_policy(policy::CommandKind::kProtPrivate, cmd)) return;
    prot_private_ = true;
    reply(200, "Protection level set to P");
  } else if (level == "S" || level == "E") {
    reply(536, "PROT " + level + " not supported");
  } else {
    reply(504, "PROT level not recognized");
  }
}

void ControlSession::handle_ccc() {
  policy::ChannelState state{control_tls_, phase_ == Phase::kLoggedIn, prot_private_};
  const auto decision = policy::check(tls_required(), policy::CommandKind::kCcc, state);
  if (!decision.allowed) {
    deny(decision.reason, "CCC", decision.code, decision.message);
    return;
  }
  ccc_pending_ = true;
  bufferevent_disable(down_.get(), EV_READ);
  reply(200, "CCC command successful; control channel continues in clear");
}

void ControlSession::handle_feat() {
  if (phase_ == Phase::kLoggedIn) {
    expectations_.push_back({Expect::kFeat, "FEAT"});
    send_upstream("FEAT");
    return;
  }
  send_down(ftp::build_feat_reply(gateway_features()));
}

void ControlSession::handle_feat_reply(const ftp::Reply& reply_in) {
  std::vector<std::string> features = gateway_features();
  if (reply_in.code == 211) {
    for (auto& f : ftp::relayable_backend_features(ftp::parse_feat_reply(reply_in))) features.push_back(f);
  }
  send_down(ftp::build_feat_reply(features));
}

std::vector<std::string> ControlSession::gateway_features() const {
  return ftp::gateway_features(policy::allows_ccc(tls_required()));
}

void ControlSession::handle_host(const ftp::Command& cmd) {
  if (phase_ != Phase::kAwaitUser) {
    reply(503, "HOST must come before USER");
    return;
  }
  if (cmd.argument.empty()) {
    reply(501, "HOST requires an argument");
    return;
  }
  std::string name = cmd.argument;
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  if (name.size() > 2 && name.front() == '[' && name.back() == ']') name = name.substr(1, name.size() - 2);
  // SECURITY: HOST picks among the listener's own backends (host_backends), never one that
  // only another listener serves; such a name is as unknown as any other.
  bool any_routes = false;
  bool out_of_scope = false;
  for (const auto& backend : runtime_->config.backends) {
    if (backend.hosts.empty()) continue;
    const bool named = std::find(backend.hosts.begin(), backend.hosts.end(), name) != backend.hosts.end();
    if (!listener_.host_may_route_to(backend.name)) {
      out_of_scope |= named;
      continue;
    }
    any_routes = true;
    if (named) routed_backend_ = backend.name;
  }
  if ((any_routes || out_of_scope) && routed_backend_.empty()) {
    deny(out_of_scope ? "host_not_allowed" : "unknown_host", "HOST", 504, "Unknown host");
    return;
  }
  host_ = name;
  // HOST may be repeated before USER: bounded like denials.
  if (!routed_backend_.empty()) log_bounded(LogLevel::kInfo, "host", {{"host", host_}, {"backend", routed_backend_}});
  reply(220, "HOST accepted");
}

void ControlSession::handle_quit() {
  if (up_) send_upstream("QUIT");
  reply(221, "Goodbye");
  close_after_flush();
}

void ControlSession::handle_user(const ftp::Command& cmd) {
  if (phase_ == Phase::kLoggedIn) {
    reply(503, "Already logged in");
    return;
  }
  if (cmd.argument.empty()) {
    reply(501, "USER requires a user name");
    return;
  }
  // SECURITY: policy is decided on exactly the name the backend sees (telnet IAC in USER,
  // see is_acceptable_user_name); the refused name is not logged.
  if (!ftp::is_acceptable_user_name(cmd.argument)) {
    deny("bad_user_name", "USER", 501, "Invalid user name");
    return;
  }
  user_ = cmd.argument;
  // SECURITY: decided before anything reaches the backend; a USER in clear under a
  // policy that protects authentication never leaves the gateway.
  if (refused_by_policy(policy::CommandKind::kLogin, cmd)) return;
  if (refused_by_login_throttle("USER", user_)) return;
  pending_user_line_ = "USER " + cmd.argument;
  if (up_) {
    phase_ = Phase::kLogin;
    expectations_.push_back({Expect::kRelay, "USER"});
    send_upstream(pending_user_line_);
    return;
  }
  connect_backend();
}

void ControlSession::handle_pass(const ftp::Command& cmd) {
  if (phase_ == Phase::kLoggedIn) {
    reply(503, "Already logged in");
    return;
  }
  if (phase_ != Phase::kLogin) {
    reply(503, "Login with USER first");
    return;
  }
  if (refused_by_policy(policy::CommandKind::kLogin, cmd)) return;
  if (refused_by_login_throttle(cmd.verb, user_)) return;
  relay_command(cmd, cmd.verb + " " + cmd.argument);
}

bool ControlSession::refused_by_login_throttle(std::string_view verb, const std::string& user) {
  const auto now = std::chrono::steady_clock::now();
  // SECURITY: password guessing on sessions opened before the ban (the gateway checks bans
  // at connect, but an attacker pre-opens many sessions): every USER/PASS/ACCT checks again.
  if (services_.login_throttle->banned(client_ip_, now)) {
    deny("login_banned", verb, 421, "Too many failed logins, try again later",
         "client address banned for login_ban_time after max_login_failures failed logins");
  } else if (services_.login_throttle->user_locked(user, now)) {
    // SECURITY: one account guessed from many addresses (a botnet, an IPv6 prefix); the
    // password never reaches the backend while the name is locked.
    deny("login_user_locked", verb, 421, "Too many failed logins, try again later",
         "user name locked for login_ban_time after max_user_login_failures failed logins");
  } else {
    return false;
  }
  close_after_flush();
  return true;
}

void ControlSession::relay_command(const ftp::Command& cmd, const std::string& line) {
  expectations_.push_back({Expect::kRelay, cmd.verb});
  send_upstream(line);
}

// ---------------------------------------------------------------------------------------
// Data channel

void ControlSession::handle_passive(const ftp::Command& cmd, bool epsv) {
  if (refused_by_policy(policy::CommandKind::kOther, cmd)) return;
  if (epsv) {
    const auto arg = ftp::parse_epsv_argument(cmd.argument);
    if (arg.kind == ftp::EpsvArgument::Kind::kAll) {
      epsv_all_ = true;
      reply(200, "EPSV ALL accepted");
      return;
    }
    const bool v6 = advertised_.is_v6() && !ftp::is_ipv4_literal(advertised_.ip());
    if (arg.kind == ftp::EpsvArgument::Kind::kUnsupported ||
        (arg.kind == ftp::EpsvArgument::Kind::kIpv4 && v6) || (arg.kind == ftp::EpsvArgument::Kind::kIpv6 && !v6)) {
      reply(522, v6 ? "Network protocol not supported, use (2)" : "Network protocol not supported, use (1)");
      return;
    }
  } else if (epsv_all_) {
    reply(503, "PASV not allowed after EPSV ALL");
    return;
  }
  request_backend_passive({Expect::kBackendPassive, cmd.verb, epsv});
}

void ControlSession::handle_active(const ftp::Command& cmd, bool eprt) {
  if (refused_by_policy(policy::CommandKind::kOther, cmd)) return;
  const auto& active = runtime_->config.active;
  if (!active.enabled) {
    deny("active_disabled", cmd.verb, 502, "Active mode is disabled; use PASV or EPSV");
    return;
  }
  if (epsv_all_) {
    reply(503, cmd.verb + " not allowed after EPSV ALL");
    return;
  }
  const auto target = eprt ? ftp::parse_eprt_argument(cmd.argument) : ftp::parse_port_argument(cmd.argument);
  auto address = target ? net::SocketAddress::from_numeric(target->host, target->port) : std::nullopt;
  if (!address) {
    reply(501, "Syntax error in " + cmd.verb + " argument");
    return;
  }
  if (address->is_v6() != local_.is_v6()) {
    reply(522, local_.is_v6() ? "Network protocol not supported, use (2)" : "Network protocol not supported, use (1)");
    return;
  }
  // SECURITY: FTP bounce (RFC 2577 §3): the gateway connects only to the client's own host,
  // and never to a privileged port there.
  if (!active.allow_foreign_address && !address->same_host(client_)) {
    deny("bounce_foreign_address", cmd.verb, 504, cmd.verb + " to another host than the client refused");
    return;
  }
  if (target->port < active.min_port) {
    deny("bounce_low_port", cmd.verb, 504,
         cmd.verb + " to a port below " + std::to_string(active.min_port) + " refused");
    return;
  }
  Expectation expectation{Expect::kBackendPassive, cmd.verb, false};
  expectation.active_target = *address;
  request_backend_passive(std::move(expectation));
}

void ControlSession::request_backend_passive(Expectation expectation) {
  retire_data_channel();
  data_refusal_.reset();
  backend_data_endpoint_.reset();
  backend_data_ready_ = false;
  if (runtime_->backend(backend_name())->config().data_mode != BackendDataMode::kActive) {
    expectations_.push_back(std::move(expectation));
    send_upstream(server_->address.is_v6() ? "EPSV" : "PASV");
    return;
  }
  // data_mode: active — the backend connects to the gateway, which listens on the address
  // its upstream control connection uses.
  if (!open_client_side(expectation)) return;
  auto upstream_local = net::SocketAddress::local_of(bufferevent_getfd(up_.get()));
  auto port = upstream_local ? data_->listen_for_backend(*upstream_local, server_->address) : std::nullopt;
  if (!port) {
    retire_data_channel();
    reply(425, "Unable to build data connection: cannot listen for the backend");
    return;
  }
  expectation.backend_active = true;
  expectations_.push_back(expectation);
  send_upstream(upstream_local->is_v6() ? "EPRT " + ftp::build_eprt_argument(upstream_local->ip(), *port)
                                        : "PORT " + ftp::build_port_argument(upstream_local->ip(), *port));
}

bool ControlSession::open_client_side(const Expectation& expectation) {
  if (expectation.active_target) {
    data_ = data::DataChannel::open_active(data_settings(), *expectation.active_target, local_, *this);
    return true;
  }
  if (services_.shared_port != nullptr) {
    data_ = data::DataChannel::open_shared(data_settings(), *this);
    return true;
  }
  net::SocketAddress listen_on = local_;
  listen_on.set_port(0);
  data_ = data::DataChannel::open_passive(data_settings(), listen_on, *services_.ports, *this);
  if (!data_) {
    log(LogLevel::kWarn, "passive_error", {{"error", "no free passive port"}});
    reply(425, "Unable to build data connection: no free passive port");
    return false;
  }
  return true;
}

void ControlSession::answer_data_command(const Expectation& expectation) {
  if (expectation.active_target) {
    reply(200, expectation.verb + " command successful");
    return;
  }
  if (data_->port() == 0) {
    // Shared port, and this address's earlier clear transfer still waits for its
    // connection: answered once it arrives (on_data_port_ready) or gives up.
    deferred_answer_ = expectation;
    log(LogLevel::kDebug, "passive_wait", {{"reason", "shared port busy for this address"}});
    return;
  }
  if (control_tls_) {
    SSL* ssl = down_ssl_.get();
    // A fresh TLS 1.3 ticket per transfer: clients that use each ticket once never run dry.
    if (ssl != nullptr && SSL_version(ssl) >= TLS1_3_VERSION) SSL_new_session_ticket(ssl);
  }
  if (expectation.client_wants_epsv) {
    send_down(ftp::build_epsv_reply(data_->port()) + "\r\n");
    return;
  }
  std::string address = class_.masquerade_address;
  if (address.empty()) address = runtime_->config.passive.masquerade_address;
  if (address.empty()) address = advertised_.ip();
  if (!ftp::is_ipv4_literal(address)) {
    retire_data_channel();
    reply(522, "Network protocol not supported, use EPSV");
    return;
  }
  send_down(ftp::build_pasv_reply(address, data_->port()) + "\r\n");
}

data::DataChannel::Settings ControlSession::data_settings() const {
  const auto& config = runtime_->config;
  data::DataChannel::Settings settings;
  settings.base = services_.base;
  settings.ssl_ctx = runtime_->tls->get();
  settings.protect = prot_private_;
  settings.binding = &binding_;
  settings.require_reuse = session_reuse_required();
  settings.client_address = client_;
  settings.allow_foreign_address = config.data.allow_foreign_address;
  settings.proxy_protocol = listener_.proxy_protocol;
  settings.proxy_protocol_from = listener_.proxy_protocol_from;
  settings.shared = services_.shared_port;
  settings.owner = {services_.worker, id_};
  settings.handshake_timeout = config.limits.handshake_timeout;
  settings.connect_timeout = config.limits.data_connect_timeout;
  settings.stall_timeout = config.data.stall_timeout;
  if (up_ssl_ != nullptr) {
    // The backend's data connections resume our upstream control session (vsftpd
    // require_ssl_reuse, ProFTPD TLSOptions without NoSessionReuseRequired).
    settings.backend_tls = runtime_->backend(backend_name())->tls();
    settings.backend_host = server_->host;
    settings.backend_session = std::shared_ptr<SSL_SESSION>(SSL_get1_session(up_ssl_), SSL_SESSION_free);
  }
  return settings;
}

void ControlSession::handle_backend_passive(const Expectation& expectation, const ftp::Reply& backend_reply) {
  if (expectation.backend_active) {
    if (backend_reply.code / 100 != 2) {
      retire_data_channel();
      send_down(backend_reply.wire());  // the backend refused our PORT/EPRT
      return;
    }
    backend_data_ready_ = true;
    answer_data_command(expectation);
    return;
  }
  std::optional<uint16_t> port;
  if (backend_reply.code == 227) {
    if (auto hp = ftp::parse_pasv_reply(backend_reply.text())) port = hp->port;
  } else if (backend_reply.code == 229) {
    port = ftp::parse_epsv_reply(backend_reply.text());
  } else {
    send_down(backend_reply.wire());  // the backend's own refusal, e.g. 421 or 5xx
    return;
  }
  if (!port) {
    log(LogLevel::kWarn, "backend_error", {{"error", "unparsable passive reply"}, {"reply", backend_reply.text()}});
    reply(425, "Unable to build data connection: backend passive reply not understood");
    return;
  }
  // SECURITY: connect to the backend host we already talk to, whatever address its reply
  // names (a hostile or NATed backend must not steer the gateway elsewhere).
  net::SocketAddress endpoint = server_->address;
  endpoint.set_port(*port);
  backend_data_endpoint_ = endpoint;
  backend_data_ready_ = true;
  if (open_client_side(expectation)) answer_data_command(expectation);
}

void ControlSession::handle_transfer(const ftp::Command& cmd, data::Direction direction) {
  if (refused_by_policy(policy::CommandKind::kDataTransfer, cmd)) return;
  if (data_refusal_) {
    reply(425, "Unable to build data connection: " + data_refusal_->reply_reason);
    data_refusal_.reset();
    return;
  }
  if (!data_ || !backend_data_ready_) {
    reply(425, "Unable to build data connection: use PASV or EPSV first");
    return;
  }
  if (data_->protect() != prot_private_) {
    retire_data_channel();
    reply(425, "Unable to build data connection: protection level changed after PASV, send PASV again");
    return;
  }
  transfer_ = Transfer{cmd, direction};
  transfer_->started = std::chrono::steady_clock::now();
  if (data_->state() == data::DataChannel::State::kReady) {
    forward_transfer();
    return;
  }
  // The client verifies its data connection only after a preliminary reply (TLS clients
  // handshake after 150), and the backend must not see a transfer whose data connection
  // we may still refuse — so the gateway answers 150 itself and forwards later.
  transfer_->own_preliminary = true;
  reply(150, "Opening " + std::string(prot_private_ ? "TLS-protected " : "") + "data connection for " + cmd.verb);
  if (data_->active()) data_->connect_to_client();
}

void ControlSession::forward_transfer() {
  transfer_->forwarded = true;
  expectations_.push_back({Expect::kTransfer, transfer_->command.verb});
  send_upstream(transfer_->command.verb +
                (transfer_->command.argument.empty() ? "" : " " + transfer_->command.argument));
  data_->start_relay(transfer_->direction, backend_data_endpoint_);
}

void ControlSession::on_data_ready() {
  if (transfer_ && !transfer_->forwarded) forward_transfer();
}

void ControlSession::on_data_refused(const data::DataRefusal& refusal) {
  if (!refusal.denial_reason.empty()) services_.metrics->policy_denials(refusal.denial_reason).Increment();
  log_bounded(LogLevel::kWarn, refusal.denial_reason.empty() ? "data_error" : "policy_denial",
             {{"reason", refusal.denial_reason.empty() ? "data_connection_failed" : refusal.denial_reason},
              {"message", refusal.log_message}});
  retire_data_channel();
  if (deferred_answer_) {
    deferred_answer_.reset();
    reply(425, "Unable to build data connection: " + refusal.reply_reason);
    process_lines();
    return;
  }
  if (transfer_ && !transfer_->forwarded) {
    transfer_.reset();
    reply(425, "Unable to build data connection: " + refusal.reply_reason);
    process_lines();
    return;
  }
  data_refusal_ = refusal;
}

void ControlSession::on_data_handshake(SSL* ssl, bool ok, const std::string& error) {
  const char* version = ok ? SSL_get_version(ssl) : "unknown";
  services_.metrics->tls_handshakes("data", version, ok ? "success" : "failure").Increment();
  if (ok) {
    nlohmann::json fields = {{"channel", "data"},
                             {"version", version},
                             {"cipher", SSL_get_cipher_name(ssl)},
                             {"resumed", SSL_session_reused(ssl) == 1}};
    if (data_ && data_->handshake_worker()) fields["handshake_worker"] = *data_->handshake_worker();
    log(LogLevel::kInfo, "tls_handshake", fields);
  } else {
    log(LogLevel::kInfo, "tls_handshake", {{"channel", "data"}, {"result", "failure"}, {"error", error}});
  }
}

void ControlSession::on_data_port_ready() {
  if (!deferred_answer_) return;
  const Expectation expectation = std::move(*deferred_answer_);
  deferred_answer_.reset();
  answer_data_command(expectation);
  process_lines();
}

void ControlSession::shared_port_granted(uint64_t reservation, uint16_t port) {
  if (data_ && data_->reservation() == reservation) data_->port_granted(port);
}

void ControlSession::adopt_shared_data(uint64_t reservation, std::unique_ptr<data::SharedDataConnection> connection) {
  // A connection for a channel given up meanwhile closes here (its destructor).
  if (data_ && data_->reservation() == reservation) data_->adopt_shared(std::move(connection));
}

void ControlSession::on_data_finished(const data::TransferOutcome& outcome) {
  if (!transfer_ || transfer_->data_done) return;
  transfer_->data_done = true;
  transfer_->outcome = outcome;
  // A failure is final at once; a success only with the backend's 2xx (complete_transfer).
  if (!outcome.ok) record_transfer(outcome);
  if (transfer_->held_final) complete_transfer();
}

void ControlSession::record_transfer(const data::TransferOutcome& outcome) {
  if (transfer_->recorded) return;  // one record per transfer
  transfer_->recorded = true;
  const char* direction = transfer_->direction == data::Direction::kDownload ? "download" : "upload";
  const char* protection = prot_private_ ? "private" : "clear";
  services_.metrics->data_connections(direction, protection).Increment();
  services_.metrics->transfer_bytes(direction).Increment(static_cast<double>(outcome.bytes));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - transfer_->started).count();
  nlohmann::json fields = {{"command", transfer_->command.verb}, {"path", transfer_->command.argument},
                           {"bytes", outcome.bytes},           {"seconds", seconds},
                           {"protection", protection},         {"direction", direction},
                           {"result", outcome.ok ? "ok" : "failed"}};
  if (!outcome.ok) fields["error"] = outcome.error;
  log(outcome.ok ? LogLevel::kInfo : LogLevel::kWarn, "transfer", fields);
}

void ControlSession::handle_transfer_reply(const ftp::Reply& backend_reply) {
  if (backend_reply.preliminary()) {
    if (!transfer_ || !transfer_->own_preliminary) send_down(backend_reply.wire());
    return;
  }
  expectations_.pop_front();
  if (!transfer_) {  // aborted: the data channel is gone already
    send_down(backend_reply.wire());
    return;
  }
  transfer_->held_final = backend_reply;
  // The final reply waits until every byte reached its destination; an error ends the
  // transfer at once.
  if (transfer_->data_done || backend_reply.code >= 400) complete_transfer();
}

void ControlSession::complete_transfer() {
  ftp::Reply final_reply = std::move(*transfer_->held_final);
  const bool failed = transfer_->data_done && !transfer_->outcome.ok;
  // SECURITY: truncation. Complete = the source ended cleanly *and* the backend said 2xx;
  // anything else is a failed transfer, and a download's client sees a reset, not an end.
  const bool confirmed = transfer_->data_done && transfer_->outcome.ok && final_reply.code / 100 == 2;
  if (!transfer_->recorded) {
    data::TransferOutcome outcome =
        transfer_->data_done ? transfer_->outcome : data::TransferOutcome{false, data_ ? data_->bytes() : 0, ""};
    if (!confirmed) {
      outcome.ok = false;
      if (outcome.error.empty()) {
        outcome.error = "backend replied " + (final_reply.lines.empty() ? std::to_string(final_reply.code)
                                                                         : final_reply.lines.front());
      }
    }
    record_transfer(outcome);
  }
  if (data_ && !confirmed && final_reply.code >= 400 && data_->bytes() == 0) {
    data_->end_refused();
  } else if (data_) {
    data_->end_download(confirmed);
  }
  transfer_.reset();
  if (failed && final_reply.code / 100 == 2) {
    // The backend saw a complete transfer, the gateway did not (e.g. the client's TLS
    // ended with an alert): the client must not be told it succeeded.
    retire_data_channel();
    reply(426, "Connection closed; transfer aborted");
    process_lines();
    return;
  }
  retire_data_channel();
  send_down(final_reply.wire());
  process_lines();
}

void ControlSession::handle_abort() {
  if (!transfer_) return;
  log(LogLevel::kInfo, "abort", {{"command", transfer_->command.verb}});
  if (data_) data_->reset_backend();
  retire_data_channel();
  if (!transfer_->forwarded) {
    transfer_.reset();
    reply(426, "Connection closed; transfer aborted");
    reply(226, "ABOR command successful");
    return;
  }
  // The backend sees its data connection close, ends the transfer (426/226) and answers
  // ABOR; both replies are relayed in order.
  transfer_.reset();
  expectations_.push_back({Expect::kRelay, "ABOR"});
  send_upstream("ABOR");
}

void ControlSession::retire_data_channel() {
  if (!data_) return;
  data_->release_reservation();
  // The channel may be calling us right now: free it from the event loop, not here.
  retired_data_.push_back(std::move(data_));
  reaper_.arm(std::chrono::milliseconds(0));
}

// ---------------------------------------------------------------------------------------
// Upstream control connection

void ControlSession::connect_backend() {
  backend::BackendPool* pool = runtime_->backend(backend_name());
  server_order_.clear();
  if (pool != nullptr) server_order_ = pool->connect_order(client_ip_, user_);
  server_index_ = 0;
  phase_ = Phase::kConnecting;
  try_next_backend_server();
}

void ControlSession::try_next_backend_server() {
  if (server_index_ >= server_order_.size()) {
    backend_failed(server_order_.empty() ? "no healthy backend server" : "no backend server reachable");
    return;
  }
  server_ = server_order_[server_index_++];
  connect_started_ = std::chrono::steady_clock::now();
  backend::BackendPool* pool = runtime_->backend(backend_name());
  up_ssl_ = nullptr;
  up_handshaking_ = false;
  if (pool->config().tls == BackendTls::kImplicit) {
    tls::SslPtr ssl = pool->tls()->new_ssl(server_->host, nullptr);
    if (!ssl) {
      server_failed("cannot create TLS state: " + tls::drain_errors());
      return;
    }
    up_ssl_ = ssl.get();
    up_handshaking_ = true;
    up_ = tls::make_tls_bufferevent(services_.base, -1, std::move(ssl), BUFFEREVENT_SSL_CONNECTING);
  } else {
    up_.reset(bufferevent_socket_new(services_.base, -1, BEV_OPT_CLOSE_ON_FREE));
  }
  if (!up_) {
    up_ssl_ = nullptr;
    server_failed("cannot create the backend connection");
    return;
  }
  bufferevent_setcb(up_.get(), &ControlSession::on_up_read, nullptr, &ControlSession::on_up_event, this);
  bufferevent_setwatermark(up_.get(), EV_READ, 0, kControlReadHighWater);
  backend_timer_.arm(runtime_->backend(backend_name())->config().connect_timeout);
  if (bufferevent_socket_connect(up_.get(), server_->address.get(), static_cast<int>(server_->address.length())) !=
      0) {
    server_failed(evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
  }
}

void ControlSession::server_failed(const std::string& why) {
  backend_timer_.cancel();
  services_.metrics->backend_connect_failures(backend_name(), server_->name).Increment();
  log(LogLevel::kWarn, "backend_error", {{"server", server_->name}, {"error", why}});
  if (auto* pool = runtime_->backend(backend_name())) pool->report(*server_, false, why);
  up_.reset();
  if (!expectations_.empty() && expectations_.front().kind == Expect::kGreeting) expectations_.pop_front();
  phase_ = Phase::kConnecting;
  try_next_backend_server();
}

void ControlSession::on_up_event(bufferevent*, short what, void* self) {
  auto* session = static_cast<ControlSession*>(self);
  if (what & BEV_EVENT_CONNECTED) {
    if (session->up_handshaking_) {
      session->upstream_tls_established();
    } else {
      session->backend_connected();
    }
    return;
  }
  if (session->up_handshaking_) {
    const std::string why =
        "TLS handshake with the backend failed: " +
        tls::client_handshake_error(session->up_ssl_, evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    // SECURITY: never a fall-back to clear; implicit: try the next server, explicit: give up.
    if (session->phase_ == Phase::kConnecting) {
      session->server_failed(why);
    } else {
      session->backend_failed(why);
    }
    return;
  }
  if (session->phase_ == Phase::kConnecting) {
    session->server_failed(evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    return;
  }
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) session->backend_failed("backend closed the control connection");
}

void ControlSession::backend_connected() {
  backend_timer_.cancel();
  services_.metrics->observe_backend_connect(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - connect_started_).count());
  int one = 1;
  setsockopt(bufferevent_getfd(up_.get()), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  phase_ = Phase::kBackendGreeting;
  expectations_.push_back({Expect::kGreeting, ""});
  // The greeting must come within connect_timeout too.
  backend_timer_.arm(runtime_->backend(backend_name())->config().connect_timeout);
  bufferevent_enable(up_.get(), EV_READ | EV_WRITE);
}

void ControlSession::backend_failed(const std::string& why) {
  if (closing_) return;
  log(LogLevel::kWarn, "backend_error", {{"error", why}});
  up_.reset();
  reply(421, kBackendUnreachable);
  close_after_flush();
}

void ControlSession::on_up_read(bufferevent*, void* self) { static_cast<ControlSession*>(self)->pull_upstream(); }

void ControlSession::pull_upstream() {
  char chunk[4096];
  // SECURITY: a backend flooding replies to a client that does not read them is not read
  // either while the client's backlog is full (libevent stops at kControlReadHighWater).
  // up_ is looked up per chunk: a reply may replace it (AUTH TLS) or drop it (a failure).
  while (!closing_ && up_ && !downstream_backlogged()) {
    evbuffer* in = bufferevent_get_input(up_.get());
    int n = evbuffer_remove(in, chunk, sizeof(chunk));
    if (n <= 0) {
      if (!take_tls_pending(up_handshaking_ ? nullptr : up_ssl_, in)) return;
      continue;
    }
    up_lines_.feed(std::string_view(chunk, static_cast<size_t>(n)));
    while (!closing_) {
      auto line = up_lines_.next();
      if (!line) break;
      if (line->kind == ftp::LineEvent::Kind::kTooLong) {
        backend_failed("backend sent an over-long reply line");
        return;
      }
      const auto status = up_replies_.feed_line(line->text);
      if (status == ftp::ReplyAssembler::Status::kComplete) {
        handle_reply(up_replies_.take());
      } else if (status != ftp::ReplyAssembler::Status::kNeedMore) {
        backend_failed(status == ftp::ReplyAssembler::Status::kMalformed ? "malformed backend reply"
                                                                        : "backend reply too large");
        return;
      }
    }
  }
}

void ControlSession::handle_reply(ftp::Reply backend_reply) {
  if (expectations_.empty()) {
    // Unsolicited (e.g. 421 before closing): pass it on.
    send_down(backend_reply.wire());
    return;
  }
  const Expectation expectation = expectations_.front();
  switch (expectation.kind) {
    case Expect::kGreeting:
      return handle_greeting(backend_reply);
    case Expect::kTransfer:
      handle_transfer_reply(backend_reply);
      break;
    default:
      if (backend_reply.preliminary()) {
        if (expectation.kind == Expect::kRelay) send_down(backend_reply.wire());
        return;
      }
      expectations_.pop_front();
      if (expectation.kind == Expect::kRelay) handle_relayed_reply(expectation, backend_reply);
      if (expectation.kind == Expect::kBackendPassive) handle_backend_passive(expectation, backend_reply);
      if (expectation.kind == Expect::kFeat) handle_feat_reply(backend_reply);
      if (expectation.kind == Expect::kBackendSetup) handle_backend_setup(expectation, backend_reply);
      break;
  }
  process_lines();
}

void ControlSession::handle_greeting(const ftp::Reply& greeting) {
  if (greeting.preliminary()) return;  // 120: ready in a moment
  backend_timer_.cancel();
  expectations_.pop_front();
  if (greeting.code != 220) {
    backend_failed("backend greeting " + std::to_string(greeting.code));
    return;
  }
  backend::BackendPool* pool = runtime_->backend(backend_name());
  pool->report(*server_, true, "");
  backend_lease_ = pool->lease(*server_);
  if (pool->config().tls == BackendTls::kExplicit) {
    // SECURITY: AUTH TLS whatever FEAT says; a stripped FEAT must not downgrade us (SPEC §3).
    expectations_.push_back({Expect::kBackendSetup, "AUTH"});
    send_upstream("AUTH TLS");
    return;
  }
  send_login_upstream();
}

void ControlSession::send_login_upstream() {
  if (up_ssl_ != nullptr) {
    expectations_.push_back({Expect::kBackendSetup, "PBSZ"});
    send_upstream("PBSZ 0");
    expectations_.push_back({Expect::kBackendSetup, "PROT"});
    send_upstream("PROT P");
  }
  phase_ = Phase::kLogin;
  expectations_.push_back({Expect::kRelay, "USER"});
  send_upstream(pending_user_line_);
}

void ControlSession::handle_backend_setup(const Expectation& expectation, const ftp::Reply& backend_reply) {
  const std::string said = backend_reply.lines.empty() ? std::to_string(backend_reply.code) : backend_reply.lines.front();
  if (expectation.verb == "AUTH") {
    if (backend_reply.code != 234) {
      backend_failed("backend refused AUTH TLS: " + said);
      return;
    }
    // SECURITY: STARTTLS injection from the backend (the upstream twin of handle_auth's
    // check): bytes after the 234 came in clear and must never pass as replies of the TLS
    // session (every later reply would answer the wrong command).
    if (up_lines_.has_pending_input() || evbuffer_get_length(bufferevent_get_input(up_.get())) > 0) {
      backend_failed("backend sent plaintext after its 234 to AUTH TLS (STARTTLS injection), discarded");
      return;
    }
    start_upstream_tls();
    return;
  }
  if (backend_reply.code / 100 != 2) backend_failed("backend refused " + expectation.verb + ": " + said);
}

void ControlSession::start_upstream_tls() {
  backend::BackendPool* pool = runtime_->backend(backend_name());
  tls::SslPtr ssl = pool->tls()->new_ssl(server_->host, nullptr);
  if (!ssl) {
    backend_failed("cannot create TLS state: " + tls::drain_errors());
    return;
  }
  // Keep the socket, drop the clear bufferevent around it.
  const evutil_socket_t fd = bufferevent_getfd(up_.get());
  bufferevent_setfd(up_.get(), -1);
  up_.reset();
  up_ssl_ = ssl.get();
  up_handshaking_ = true;
  up_ = tls::make_tls_bufferevent(services_.base, fd, std::move(ssl), BUFFEREVENT_SSL_CONNECTING);
  if (!up_) {
    up_ssl_ = nullptr;
    backend_failed("cannot create the backend TLS connection");
    return;
  }
  bufferevent_setcb(up_.get(), &ControlSession::on_up_read, nullptr, &ControlSession::on_up_event, this);
  bufferevent_setwatermark(up_.get(), EV_READ, 0, kControlReadHighWater);
  backend_timer_.arm(pool->config().connect_timeout);
  bufferevent_enable(up_.get(), EV_READ | EV_WRITE);
}

void ControlSession::upstream_tls_established() {
  up_handshaking_ = false;
  log(LogLevel::kDebug, "backend_tls",
      {{"server", server_->name}, {"version", SSL_get_version(up_ssl_)}, {"cipher", SSL_get_cipher_name(up_ssl_)}});
  if (phase_ == Phase::kConnecting) {  // implicit: TCP and TLS are up, the greeting follows
    backend_connected();
    return;
  }
  backend_timer_.cancel();
  send_login_upstream();
}

void ControlSession::handle_relayed_reply(const Expectation& expectation, const ftp::Reply& backend_reply) {
  if ((expectation.verb == "USER" || expectation.verb == "PASS" || expectation.verb == "ACCT") &&
      phase_ == Phase::kLogin) {
    if (backend_reply.code == 230) {
      phase_ = Phase::kLoggedIn;
      login_timer_.cancel();
      idle_timer_.arm(runtime_->config.limits.idle_timeout);
      log(LogLevel::kInfo, "login", {{"result", "success"}});
      // SECURITY: a success does not reset the failure counts (one valid account must not
      // buy unlimited guesses at others).
    } else if (backend_reply.code == 530 && expectation.verb != "USER") {
      log(LogLevel::kInfo, "login", {{"result", "failure"}, {"code", backend_reply.code}});
      const auto outcome =
          services_.login_throttle->record_failure(client_ip_, user_, std::chrono::steady_clock::now());
      if (outcome.address_banned) log(LogLevel::kWarn, "login_ban", {{"scope", "address"}});
      if (outcome.user_locked) log(LogLevel::kWarn, "login_ban", {{"scope", "user"}});
      // Also when the ban fired on another session while this login was in flight.
      if (refused_by_login_throttle(expectation.verb, user_)) return;
      const auto delay = runtime_->config.limits.login_failure_delay;
      if (delay.count() > 0) {
        // SECURITY: slows password guessing on one connection; the ban stops many.
        held_login_reply_ = backend_reply.wire();
        login_delay_timer_.arm(delay);
        return;
      }
    }
  }
  send_down(backend_reply.wire());
}

void ControlSession::send_upstream(const std::string& line) {
  if (!up_) return;
  // SECURITY: a 0xFF the client sent as IAC IAC goes up as IAC IAC, never as a lone IAC
  // the backend would decode as a telnet command.
  const std::string wire = ftp::telnet_escape(line) + "\r\n";
  bufferevent_write(up_.get(), wire.data(), wire.size());
}

// ---------------------------------------------------------------------------------------
// Output and lifecycle

void ControlSession::reply(int code, std::string_view text) { send_down(ftp::make_reply(code, text)); }

void ControlSession::send_down(const std::string& wire) {
  if (!down_) return;
  bufferevent_write(down_.get(), wire.data(), wire.size());
}

void ControlSession::deny(std::string_view reason, std::string_view command, int code, std::string_view text,
                          const std::string& message) {
  services_.metrics->policy_denials(reason).Increment();
  log_bounded(LogLevel::kInfo, "policy_denial",
             {{"reason", reason}, {"command", command}, {"reply", code},
              {"message", message.empty() ? std::string(text) : message}});
  reply(code, text);
}

void ControlSession::log_bounded(LogLevel level, std::string_view event, nlohmann::json fields) {
  // SECURITY: log amplification. A client repeating a refused command (a clear USER under
  // tls_required, thousands per second) must not turn each line into a log record: the
  // first few of each reason are logged, the rest counted on session_end (the metrics
  // still count every one). Bounded: reasons are a fixed vocabulary.
  const std::string reason = fields.value("reason", std::string(event));
  const unsigned seen = ++denials_logged_[reason];
  if (seen > kDenialsLoggedPerReason) {
    ++denials_suppressed_;
    return;
  }
  if (seen == kDenialsLoggedPerReason) fields["further"] = "not logged, counted in session_end denials_suppressed";
  log(level, event, std::move(fields));
}

void ControlSession::close_after_flush() {
  if (closing_) return;
  closing_ = true;
  retire_data_channel();
  up_.reset();
  if (!down_ || evbuffer_get_length(bufferevent_get_output(down_.get())) == 0) {
    close_flushed();
    return;
  }
  bufferevent_disable(down_.get(), EV_READ);
  bufferevent_setwatermark(down_.get(), EV_WRITE, 0, 0);
  close_timer_.arm(kCloseFlushTimeout);
}

void ControlSession::close_flushed() {
  // Our last reply is out: close_notify tells the client the end is ours and intended
  // (and OpenSSL keeps the TLS session resumable only after a clean shutdown).
  if (control_tls_ && !handshaking_ && down_ssl_) {
    SSL_shutdown(down_ssl_.get());
    tls::drain_errors();
  }
  close_now();
}

void ControlSession::shut_down() {
  if (retired_) return;
  if (transfer_ && !transfer_->recorded) {
    record_transfer({false, data_ ? data_->bytes() : 0, "cut by shutdown (limits.drain_timeout)"});
  }
  close_now();
}

void ControlSession::close_now() {
  if (retired_) return;
  // Every transfer gets its record, also one cut short because the session ended.
  if (transfer_ && !transfer_->recorded && transfer_->forwarded) {
    if (data_ && !transfer_->data_done) data_->reset_backend();
    record_transfer({false, data_ ? data_->bytes() : 0, "session ended during the transfer"});
  }
  retired_ = true;
  closing_ = true;
  login_timer_.cancel();
  idle_timer_.cancel();
  handshake_timer_.cancel();
  backend_timer_.cancel();
  close_timer_.cancel();
  retire_data_channel();
  if (up_) bufferevent_disable(up_.get(), EV_READ | EV_WRITE);
  if (down_) bufferevent_disable(down_.get(), EV_READ | EV_WRITE);
  services_.metrics->sessions_active(listener_.name).Decrement();
  // Retired (its limits released) before the log says so; the object lives until the
  // worker's reaper runs.
  retire_(id_);
  nlohmann::json fields = nlohmann::json::object();
  if (denials_suppressed_ > 0) fields["denials_suppressed"] = denials_suppressed_;
  log(LogLevel::kInfo, "session_end", std::move(fields));
}

void ControlSession::log(LogLevel level, std::string_view event, nlohmann::json fields) {
  if (!services_.logger->enabled(level)) return;
  fields["session"] = id_;
  fields["client"] = client_.to_string();
  fields["listener"] = listener_.name;
  fields["class"] = class_.name;
  if (!user_.empty()) fields["user"] = user_;
  log::Logger* target = services_.logger;
  if (services_.tls_logger != nullptr && is_tls_event(event, fields)) target = services_.tls_logger;
  target->write(level, event, fields);
}

TlsRequired ControlSession::tls_required() const { return policy::effective_tls_required(class_, user_); }

bool ControlSession::session_reuse_required() const {
  return class_.session_reuse_required.value_or(runtime_->config.tls.session_reuse_required);
}

std::string ControlSession::backend_name() const {
  return routed_backend_.empty() ? listener_.backend : routed_backend_;
}

}  // namespace ftpsgate::session
