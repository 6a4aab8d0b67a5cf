#include "session/control_session.h"

#include <algorithm>
#include <charconv>
#include <unordered_map>

#include "ftp/decimal.h"
#include "ftp/feat.h"
#include "ftp/pwd_reply.h"
#include "rules/ftp_path.h"
#include "ftpsgate/limits.h"
#include "pipeline/login_reply.h"
#include "pipeline/tls_required_filter.h"
#include "policy/client_class.h"
#include "session/refuse.h"
#include "tls/certificate_facts.h"
#include "tls/client_fingerprint.h"

namespace ftpsgate::session {

namespace {

const char* const kBackendUnreachable = "Service not available, backend unreachable";

std::string upper(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::toupper(c); });
  return out;
}

std::string command_line(const ftp::Command& cmd) {
  return cmd.verb + (cmd.argument.empty() ? "" : " " + cmd.argument);
}

}  // namespace

ControlSession::ControlSession(const Services& services, std::shared_ptr<Runtime> runtime,
                               const ListenerConfig& listener, const ClassConfig& cls, uint64_t id,
                               net::UniqueFd fd, net::SocketAddress client, net::SocketAddress local,
                               net::SocketAddress advertised, RetireFn retire)
    : services_(services),
      runtime_(std::move(runtime)),
      listener_(listener),
      class_(cls),
      id_(id),
      client_ip_(client.ip()),
      retire_(std::move(retire)),
      log_(services_, id, client.to_string(), listener.name, cls.name, user_),
      filters_(pipeline::default_filter_chain(runtime_->config.rules)),
      login_timer_(services.base,
                   [this] {
                     deny(policy::Refusal::kLoginTimeout, "");
                     close_after_flush();
                   }),
      idle_timer_(services.base,
                  [this] {
                    if (transfers_.in_transfer()) {
                      idle_timer_.arm(runtime_->config.limits.idle_timeout);
                      return;
                    }
                    deny(policy::Refusal::kIdleTimeout, "");
                    close_after_flush();
                  }),
      login_delay_timer_(services.base,
                         [this] {
                           downstream_.send(*held_login_reply_);
                           held_login_reply_.reset();
                           process_lines();
                         }),
      auth_timer_(services.base,
                  [this] {
                    edge_unavailable(policy::Refusal::kAuthUnavailable,
                                     "no login decision within auth.timeout, closing connection");
                  }),
      downstream_(services_, *runtime_, log_, std::move(fd), *this),
      upstream_(services_, *runtime_, log_, *this),
      transfers_(services_, *runtime_, listener, cls, id, {client, local, std::move(advertised)}, downstream_,
                 upstream_, log_, *this) {
  for (const auto& name : cls.auth ? *cls.auth : listener.auth) {
    // Validated at load: every name is a provider or "passthrough" (nullptr).
    auth_chain_.push_back(name == "passthrough" ? nullptr : runtime_->config.auth.find(name));
  }
}

void ControlSession::start() {
  services_.metrics->sessions_total(listener_.name, class_.name).Increment();
  services_.metrics->sessions_active(listener_.name).Increment();
  log_.log(LogLevel::kInfo, "session_start", {{"worker", services_.worker}});
  login_timer_.arm(runtime_->config.limits.login_timeout);
  if (listener_.mode == ListenerMode::kImplicit) {
    prot_private_ = true;
    downstream_.start_tls();
    return;
  }
  downstream_.start_clear();
  // The greeting is ours and immediate: no backend is contacted before USER passes policy.
  downstream_.reply(220, listener_.banner);
}

// ---------------------------------------------------------------------------------------
// The command pipeline

bool ControlSession::busy() const {
  return lifecycle_ != Lifecycle::kOpen || downstream_.switching() || held_login_reply_.has_value() ||
         edge_ == EdgeLogin::kVerifying || edge_ == EdgeLogin::kBackendLogin || upstream_.busy() || transfers_.busy();
}

void ControlSession::process_lines() {
  while (lifecycle_ == Lifecycle::kOpen) {
    downstream_.pull();
    if (busy()) {
      // During a transfer only ABOR is acted on at once; other lines wait their turn.
      if (!transfers_.in_transfer() || downstream_.tls_switch_in_progress()) break;
      auto event = downstream_.next_new_line();
      if (!event) break;
      if (event->kind == ftp::LineEvent::Kind::kLine) {
        auto cmd = ftp::parse_command(event->text);
        if (cmd && cmd->verb == "ABOR") {
          transfers_.abort();
          continue;
        }
      }
      // Bounded by DownstreamChannel::pull: kMaxPendingLines counts these too.
      downstream_.hold(std::move(*event));
      continue;
    }
    // SECURITY: a client that leaves its replies unread gets no more until it reads them.
    if (downstream_.backlogged()) break;
    auto event = downstream_.next_line();
    if (!event) break;
    handle_line(*event);
  }
}

void ControlSession::handle_line(const ftp::LineEvent& line) {
  if (phase_ == pipeline::LoginPhase::kLoggedIn) idle_timer_.arm(runtime_->config.limits.idle_timeout);
  if (line.kind == ftp::LineEvent::Kind::kTooLong) {
    deny(policy::Refusal::kLineTooLong, "");
    return;
  }
  auto cmd = ftp::parse_command(line.text);
  if (!cmd) {
    downstream_.reply(500, "Syntax error, command unrecognized");
    return;
  }
  if (log_.enabled(LogLevel::kDebug)) {
    log_.log(LogLevel::kDebug, "command", {{"command", ftp::redact_for_log(*cmd)}});
  }
  dispatch(*cmd);
}

const ControlSession::Handler& ControlSession::handler(pipeline::CommandHandler id) {
  using S = ControlSession;
  using H = pipeline::CommandHandler;
  static const std::unordered_map<H, Handler> handlers = {
      {H::kAuth, {&S::handle_auth}},
      {H::kPbsz, {&S::handle_pbsz}},
      {H::kProt, {&S::handle_prot, &S::validate_prot}},
      {H::kCcc, {&S::handle_ccc}},
      {H::kFeat, {&S::handle_feat}},
      {H::kHost, {&S::handle_host}},
      {H::kClnt, {&S::handle_clnt}},
      {H::kQuit, {&S::handle_quit}},
      {H::kUser, {&S::handle_user, &S::validate_user}},
      {H::kPass, {&S::handle_pass, &S::validate_pass}},
      {H::kNoop, {&S::handle_noop}},
      {H::kPasv, {&S::handle_pasv}},
      {H::kEpsv, {&S::handle_epsv}},
      {H::kPort, {&S::handle_port}},
      {H::kEprt, {&S::handle_eprt}},
      {H::kObsoleteData, {&S::handle_obsolete_data}},
      {H::kDownload, {&S::handle_download}},
      {H::kUpload, {&S::handle_upload}},
      {H::kRelay, {&S::handle_relay}},
  };
  return handlers.at(id);
}

void ControlSession::dispatch(const ftp::Command& received) {
  ftp::Command cmd = received;
  const pipeline::CommandRoute route = pipeline::route_command(cmd.verb);
  if (route.gate == pipeline::Gate::kLoggedIn && phase_ != pipeline::LoginPhase::kLoggedIn) {
    // At the gateway's own login no backend is there to answer.
    if (phase_ != pipeline::LoginPhase::kLogin || edge_ != EdgeLogin::kOff) {
      downstream_.reply(530, "Please login with USER and PASS");
      return;
    }
    // Between USER and PASS the backend answers (530/503); the filters see a plain command.
    if (filters_pass(cmd, policy::CommandKind::kOther)) relay(cmd.verb, command_line(cmd));
    return;
  }
  const Handler& entry = handler(route.handler);
  if (entry.validate != nullptr && !(this->*entry.validate)(cmd)) return;
  if (route.filtered && !filters_pass(cmd, pipeline::tls_command_kind(cmd))) return;
  (this->*entry.handle)(cmd);
}

pipeline::SessionView ControlSession::view() const {
  pipeline::SessionView view;
  view.user = user();
  if (authenticated_) view.groups = authenticated_->groups;
  view.working_directory = working_directory_;
  view.class_name = class_.name;
  view.tls_required = tls_required_now();
  view.channel = {downstream_.protected_now(), phase_ == pipeline::LoginPhase::kLoggedIn, prot_private_};
  view.phase = phase_;
  return view;
}

bool ControlSession::filters_pass(ftp::Command& cmd, policy::CommandKind kind) {
  pipeline::FilterVerdict verdict = filters_.run(cmd, kind, view());
  switch (verdict.action) {
    case pipeline::FilterVerdict::Action::kContinue:
    case pipeline::FilterVerdict::Action::kRewrite:
      if (verdict.monitored) log_.monitored_denial(verdict.monitored->rule, cmd.verb, verdict.monitored->message);
      cmd = std::move(verdict.command);
      return true;
    case pipeline::FilterVerdict::Action::kDeny:
      deny(verdict.reason, cmd.verb, verdict.code, verdict.text, verdict.message, verdict.rule);
      return false;
    case pipeline::FilterVerdict::Action::kAnswer:
      downstream_.reply(verdict.code, verdict.text);
      return false;
  }
  return false;
}

// ---------------------------------------------------------------------------------------
// TLS on the control channel: AUTH, PBSZ, PROT, CCC

void ControlSession::handle_auth(const ftp::Command& cmd) {
  if (downstream_.protected_now()) {
    downstream_.reply(503, "Already using TLS");
    return;
  }
  if (phase_ != pipeline::LoginPhase::kAwaitUser) {
    downstream_.reply(503, "AUTH must come before USER");
    return;
  }
  const std::string mechanism = upper(cmd.argument);
  if (mechanism != "TLS" && mechanism != "SSL" && mechanism != "TLS-C" && mechanism != "TLS-P") {
    downstream_.reply(504, "AUTH mechanism not supported");
    return;
  }
  // SECURITY: STARTTLS command injection (CVE-2011-0411 class). Bytes pipelined after
  // AUTH arrived in clear and must never be executed as if they came over TLS.
  if (downstream_.has_unread_input()) {
    services_.metrics->policy_denials(policy::reason_name(policy::Refusal::kStarttlsInjection)).Increment();
    log_.log(LogLevel::kWarn, "policy_denial",
             {{"reason", policy::reason_name(policy::Refusal::kStarttlsInjection)}, {"command", "AUTH"},
              {"message", "plaintext pipelined after AUTH, closing connection"}});
    close_now();
    return;
  }
  if (mechanism == "SSL" || mechanism == "TLS-P") prot_private_ = true;  // RFC 4217 §4 legacy semantics
  downstream_.begin_tls(ftp::make_reply(234, "AUTH " + mechanism + " successful"));
}

void ControlSession::on_downstream_tls(SSL* ssl) {
  identity_.control_fingerprint = tls::client_fingerprint(ssl);
  if (!auth_chain_.empty() && auth_chain_.front() != nullptr &&
      auth_chain_.front()->type == AuthProviderType::kCertificate) {
    client_certificate_ = tls::verified_certificate_facts(ssl);
  }
  // SECURITY: a class that requires a verified client certificate is enforced here even
  // when the TLS level only asked for one (another class made it optional).
  const VerifyClient required = class_.verify_client.value_or(runtime_->config.tls.verify_client);
  if (required == VerifyClient::kOn) {
    tls::X509Ptr peer(SSL_get1_peer_certificate(ssl));
    if (!peer || SSL_get_verify_result(ssl) != X509_V_OK) {
      deny(policy::Refusal::kClientCertificateRequired, "AUTH", 0, {},
           "client did not present a valid certificate, closing connection (see the verify_client option)");
      close_after_flush();
      return;
    }
  }
  if (listener_.mode == ListenerMode::kImplicit) downstream_.reply(220, listener_.banner);
  process_lines();
}

void ControlSession::on_downstream_drained() {
  // The client read its replies: backend replies and commands held back meanwhile follow.
  upstream_.pull();
  process_lines();
}

void ControlSession::handle_pbsz(const ftp::Command& cmd) {
  if (!downstream_.protected_now()) {
    downstream_.reply(503, "PBSZ requires AUTH first");
    return;
  }
  if (cmd.argument.empty() || !std::all_of(cmd.argument.begin(), cmd.argument.end(), ::isdigit)) {
    downstream_.reply(501, "PBSZ requires a numeric argument");
    return;
  }
  downstream_.reply(200, "PBSZ=0");
}

bool ControlSession::validate_prot(const ftp::Command&) {
  if (downstream_.protected_now()) return true;
  downstream_.reply(503, "PROT requires AUTH first");
  return false;
}

void ControlSession::handle_prot(const ftp::Command& cmd) {
  const std::string level = upper(cmd.argument);
  if (level == "C") {
    prot_private_ = false;
    downstream_.reply(200, "Protection level set to C");
  } else if (level == "P") {
    prot_private_ = true;
    downstream_.reply(200, "Protection level set to P");
  } else if (level == "S" || level == "E") {
    downstream_.reply(536, "PROT " + level + " not supported");
  } else {
    downstream_.reply(504, "PROT level not recognized");
  }
}

void ControlSession::handle_ccc(const ftp::Command&) {
  // The tls_required filter allowed it: TLS is up, the policy allows CCC, logged in.
  downstream_.begin_clear(ftp::make_reply(200, "CCC command successful; control channel continues in clear"));
}

// ---------------------------------------------------------------------------------------
// FEAT, HOST, QUIT, NOOP

void ControlSession::handle_feat(const ftp::Command&) {
  if (phase_ == pipeline::LoginPhase::kLoggedIn) {
    upstream_.send("FEAT", [this](const ftp::Reply& reply) {
      if (!reply.preliminary()) handle_feat_reply(reply);
    });
    return;
  }
  // Before login no backend is connected: the features every server of the pool announced
  // (health checks, earlier sessions) stand in, so clients such as lftp that ask first
  // still learn about MLSD, SIZE or UTF8.
  std::vector<std::string> features = gateway_features();
  if (const backend::BackendPool* pool = runtime_->backend(backend_name())) {
    for (auto& f : pool->common_features()) features.push_back(std::move(f));
  }
  downstream_.send(ftp::build_feat_reply(features));
}

void ControlSession::handle_feat_reply(const ftp::Reply& reply_in) {
  std::vector<std::string> features = gateway_features();
  if (reply_in.code == 211) {
    std::vector<std::string> backend_features = ftp::relayable_backend_features(ftp::parse_feat_reply(reply_in));
    if (upstream_.pool() != nullptr && upstream_.server() != nullptr) {
      upstream_.pool()->learn_features(*upstream_.server(), backend_features);
    }
    for (auto& f : backend_features) features.push_back(f);
  }
  downstream_.send(ftp::build_feat_reply(features));
}

std::vector<std::string> ControlSession::gateway_features() const {
  return ftp::gateway_features(policy::allows_ccc(tls_required_now()));
}

void ControlSession::handle_clnt(const ftp::Command& cmd) {
  // The client software's self-description: never relayed (legacy servers answer 500),
  // kept for audit records next to the TLS fingerprint, which the client cannot choose.
  identity_.client_name = cmd.argument.substr(0, limits::kClientNameLength);
  log_.log_bounded(LogLevel::kInfo, "client_name", {{"client_name", identity_.client_name}});
  downstream_.reply(200, "Noted");
}

void ControlSession::handle_host(const ftp::Command& cmd) {
  if (phase_ != pipeline::LoginPhase::kAwaitUser) {
    downstream_.reply(503, "HOST must come before USER");
    return;
  }
  if (cmd.argument.empty()) {
    downstream_.reply(501, "HOST requires an argument");
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
    deny(out_of_scope ? policy::Refusal::kHostNotAllowed : policy::Refusal::kUnknownHost, "HOST");
    return;
  }
  host_ = name;
  // HOST may be repeated before USER: bounded like denials.
  if (!routed_backend_.empty()) {
    log_.log_bounded(LogLevel::kInfo, "host", {{"host", host_}, {"backend", routed_backend_}});
  }
  downstream_.reply(220, "HOST accepted");
}

void ControlSession::handle_quit(const ftp::Command&) {
  upstream_.send_and_forget("QUIT");
  downstream_.reply(221, "Goodbye");
  close_after_flush();
}

void ControlSession::handle_noop(const ftp::Command& cmd) {
  if (phase_ == pipeline::LoginPhase::kLoggedIn) {
    handle_relay(cmd);
    return;
  }
  downstream_.reply(200, "NOOP ok");  // keep-alives work before a backend exists
}

void ControlSession::handle_obsolete_data(const ftp::Command&) {
  downstream_.reply(502, "Command not implemented; use EPSV or EPRT");
}

void ControlSession::handle_relay(const ftp::Command& cmd) {
  if (cmd.verb == "REST") {
    rest_pending_ = ftp::parse_decimal(cmd.argument, true);
  }
  relay(cmd.verb, command_line(cmd));
}

void ControlSession::handle_download(const ftp::Command& cmd) {
  rest_offset_ = 0;
  transfers_.transfer(cmd, data::Direction::kDownload, {}, bandwidth_throttle(data::Direction::kDownload),
                      inspection_policy());
}

void ControlSession::handle_upload(const ftp::Command& cmd) {
  rules::UploadLimits limits;
  if (rules_active()) limits = rules::upload_limits(runtime_->config.rules, rules_subject());
  const uint64_t rest = std::exchange(rest_offset_, 0);
  // SECURITY: the scanner sees one upload's bytes. An APPE, or a STOR resumed after REST,
  // would let a signature be split across uploads that each scan clean.
  if (inspection_policy().inspects_uploads() && (cmd.verb == "APPE" || rest > 0)) {
    deny(policy::Refusal::kPartialUploadInspected, cmd.verb, 0, {},
         cmd.verb == "APPE" ? "APPE refused: uploads are inspected whole" : "STOR after REST refused: uploads are inspected whole");
    return;
  }
  if (!limits.max_size || cmd.verb == "STOU") {
    start_upload(cmd, limits);
    return;
  }
  if (cmd.verb != "APPE") {
    limits.existing = rest;  // STOR after REST n: the file keeps its first n bytes
    start_upload(cmd, limits);
    return;
  }
  // SECURITY: APPE after APPE would grow a file past max_size one allowed chunk at a time,
  // so what the file already holds counts (a missing file holds nothing).
  upstream_.send("SIZE " + cmd.argument, [this, cmd, limits](const ftp::Reply& reply) mutable {
    if (reply.preliminary()) return;
    const std::optional<uint64_t> size = ftp::parse_decimal(reply.text(), false);
    if (reply.code == 213 && size) {
      limits.existing = *size;
    } else if (reply.code != 550) {
      deny(policy::Refusal::kUploadTooLarge, cmd.verb, 0, {},
           "APPE refused: the size of the file to append to is unknown (SIZE answered " + std::to_string(reply.code) +
               ")",
           limits.rule);
      return;
    }
    start_upload(cmd, limits);
  });
}

void ControlSession::start_upload(const ftp::Command& cmd, const rules::UploadLimits& limits) {
  if (limits.max_size && limits.enforce && limits.existing >= *limits.max_size) {
    deny(policy::Refusal::kUploadTooLarge, cmd.verb, 0, {}, rules::upload_excess_message(limits, 1), limits.rule);
    return;
  }
  transfers_.transfer(cmd, data::Direction::kUpload, limits, bandwidth_throttle(data::Direction::kUpload),
                      inspection_policy());
}

data::Throttle ControlSession::bandwidth_throttle(data::Direction direction) {
  const bool download = direction == data::Direction::kDownload;
  auto rate_of = [download](const BandwidthLimit& limit) { return download ? limit.download : limit.upload; };
  const std::string dir = download ? "download" : "upload";
  std::vector<std::shared_ptr<data::SharedBucket>> buckets;
  if (const auto rate = rate_of(class_.bandwidth.session)) {
    auto& mine = session_buckets_[download ? 0 : 1];
    if (!mine) mine = std::make_shared<data::SharedBucket>(*rate, std::chrono::steady_clock::now());
    buckets.push_back(mine);
  }
  // Keyed by the rate too: a reload that changes it starts new buckets for new transfers.
  if (const auto rate = rate_of(class_.bandwidth.user)) {
    buckets.push_back(services_.bandwidth->bucket(
        "user/" + class_.name + "/" + std::string(user()) + "/" + dir + "@" + std::to_string(*rate), *rate));
  }
  if (const auto rate = rate_of(class_.bandwidth.all)) {
    buckets.push_back(
        services_.bandwidth->bucket("class/" + class_.name + "/" + dir + "@" + std::to_string(*rate), *rate));
  }
  return data::Throttle(std::move(buckets));
}

const inspection::InspectionPolicy& ControlSession::inspection_policy() const {
  if (rules_active()) {
    if (const rules::Rule* rule = rules::inspection_rule(runtime_->config.rules, rules_subject())) return *rule->inspection;
  }
  return class_.inspection;
}

rules::Subject ControlSession::rules_subject() const {
  if (authenticated_) return {authenticated_->user, authenticated_->groups, class_.name};
  return {user_, {}, class_.name};
}

// ---------------------------------------------------------------------------------------
// Login

bool ControlSession::validate_user(const ftp::Command& cmd) {
  if (phase_ == pipeline::LoginPhase::kLoggedIn) {
    downstream_.reply(503, "Already logged in");
    return false;
  }
  if (cmd.argument.empty()) {
    downstream_.reply(501, "USER requires a user name");
    return false;
  }
  // SECURITY: policy is decided on exactly the name the backend sees (telnet IAC in USER,
  // see is_acceptable_user_name); the refused name is not logged.
  if (!ftp::is_acceptable_user_name(cmd.argument)) {
    deny(policy::Refusal::kBadUserName, "USER");
    return false;
  }
  // The filters judge the login under this name's policy (tls_required per user).
  user_ = cmd.argument;
  return true;
}

void ControlSession::handle_user(const ftp::Command& cmd) {
  // SECURITY: the filters decided before anything reaches the backend; a USER in clear
  // under a policy that protects authentication never leaves the gateway.
  if (refused_by_login_throttle("USER", user_)) return;
  if (gateway_auth()) {
    edge_user();
    return;
  }
  pending_user_line_ = "USER " + cmd.argument;
  if (upstream_.connected()) {
    phase_ = pipeline::LoginPhase::kLogin;
    relay("USER", pending_user_line_);
    return;
  }
  upstream_.connect(backend_name(), client_ip_, user_);
}

void ControlSession::on_upstream_ready() {
  if (edge_ == EdgeLogin::kBackendLogin) {
    send_backend_user();
    return;
  }
  phase_ = pipeline::LoginPhase::kLogin;
  relay("USER", pending_user_line_);
}

bool ControlSession::validate_pass(const ftp::Command&) {
  if (phase_ == pipeline::LoginPhase::kLoggedIn) {
    downstream_.reply(503, "Already logged in");
    return false;
  }
  if (phase_ != pipeline::LoginPhase::kLogin) {
    downstream_.reply(503, "Login with USER first");
    return false;
  }
  return true;
}

void ControlSession::handle_pass(const ftp::Command& cmd) {
  if (refused_by_login_throttle(cmd.verb, user_)) return;
  if (gateway_auth()) {
    edge_pass(cmd);
    return;
  }
  relay(cmd.verb, cmd.verb + " " + cmd.argument);
}

bool ControlSession::refused_by_login_throttle(std::string_view verb, const std::string& user) {
  const auto now = std::chrono::steady_clock::now();
  // SECURITY: password guessing on sessions opened before the ban (the gateway checks bans
  // at connect, but an attacker pre-opens many sessions): every USER/PASS/ACCT checks again.
  if (services_.login_throttle->banned(client_ip_, now)) {
    deny(policy::Refusal::kLoginBanned, verb, 0, {},
         "client address banned for login_ban_time after max_login_failures failed logins");
  } else if (services_.login_throttle->user_locked(user, now)) {
    // SECURITY: one account guessed from many addresses (a botnet, an IPv6 prefix); the
    // password never reaches the backend while the name is locked.
    deny(policy::Refusal::kLoginUserLocked, verb, 0, {},
         "user name locked for login_ban_time after max_user_login_failures failed logins");
  } else {
    return false;
  }
  close_after_flush();
  return true;
}

void ControlSession::relay(const std::string& verb, const std::string& line) {
  upstream_.send(line, [this, verb](const ftp::Reply& reply) {
    if (reply.preliminary()) {
      downstream_.send(reply.wire());
      return;
    }
    handle_relayed_reply(verb, reply);
  });
}

void ControlSession::logged_in(nlohmann::json fields) {
  phase_ = pipeline::LoginPhase::kLoggedIn;
  login_timer_.cancel();
  idle_timer_.arm(runtime_->config.limits.idle_timeout);
  fields["result"] = "success";
  log_.log(LogLevel::kInfo, "login", std::move(fields));
  // Rules resolve relative paths against the directory the backend starts the user in.
  if (rules_active()) ask_working_directory();
  // SECURITY: a success does not reset the failure counts (one valid account must not
  // buy unlimited guesses at others).
}

void ControlSession::count_failed_login() {
  const auto outcome =
      services_.login_throttle->record_failure(client_ip_, user_, std::chrono::steady_clock::now());
  if (outcome.address_banned) log_.log(LogLevel::kWarn, "login_ban", {{"scope", "address"}});
  if (outcome.user_locked) log_.log(LogLevel::kWarn, "login_ban", {{"scope", "user"}});
}

void ControlSession::login_failed(std::string_view verb, const std::string& reply_wire, nlohmann::json fields) {
  fields["result"] = "failure";
  log_.log(LogLevel::kInfo, "login", std::move(fields));
  count_failed_login();
  // Also when the ban fired on another session while this login was in flight.
  if (refused_by_login_throttle(verb, user_)) return;
  const auto delay = runtime_->config.limits.login_failure_delay;
  if (delay.count() > 0) {
    // SECURITY: slows password guessing on one connection; the ban stops many.
    held_login_reply_ = reply_wire;
    login_delay_timer_.arm(delay);
    return;
  }
  downstream_.send(reply_wire);
}

void ControlSession::handle_relayed_reply(const std::string& verb, const ftp::Reply& reply) {
  if (rules_active() && phase_ == pipeline::LoginPhase::kLoggedIn) track_working_directory(verb, reply);
  // A REST the backend took but we could not read counts as unbounded: a later STOR under
  // max_size is refused rather than judged on a guess.
  if (verb == "REST") rest_offset_ = reply.code == 350 ? rest_pending_.value_or(UINT64_MAX) : 0;
  switch (pipeline::login_outcome(verb, phase_, reply.code)) {
    case pipeline::LoginOutcome::kNone:
      break;
    case pipeline::LoginOutcome::kLoggedIn:
      logged_in(nlohmann::json::object());
      break;
    case pipeline::LoginOutcome::kFailed:
      login_failed(verb, reply.wire(), {{"code", reply.code}});
      return;
  }
  downstream_.send(reply.wire());
}

void ControlSession::track_working_directory(const std::string& verb, const ftp::Reply& reply) {
  if (verb == "PWD" || verb == "XPWD") {
    working_directory_.clear();
    if (auto directory = ftp::pwd_directory(reply)) {
      // SECURITY: only a name the gateway can resolve the way the rules do becomes the base
      // of relative paths; anything else leaves it unknown (relative paths refused).
      auto resolved = rules::resolve_path("/", *directory);
      if (directory->starts_with('/') && std::holds_alternative<std::string>(resolved)) {
        working_directory_ = std::get<std::string>(std::move(resolved));
      }
    }
    return;
  }
  const bool changes_directory = verb == "CWD" || verb == "XCWD" || verb == "CDUP" || verb == "XCUP";
  if (!changes_directory || !reply.positive()) return;
  // SECURITY: the backend says where the change led (a symlink, a server's own idea of
  // `..`), not our reading of the argument; until it answers, the directory is unknown.
  working_directory_.clear();
  ask_working_directory();
}

void ControlSession::ask_working_directory() {
  upstream_.send("PWD", [this](const ftp::Reply& reply) {
    if (reply.preliminary()) return;
    track_working_directory("PWD", reply);
    if (working_directory_.empty()) {
      log_.log_bounded(LogLevel::kWarn, "working_directory_unknown",
                       {{"reply", reply.code}, {"message", "relative paths are refused until a PWD the gateway can read"}});
    }
  });
}

// ---------------------------------------------------------------------------------------
// Backend

void ControlSession::on_upstream_failed(const std::string& why) {
  if (lifecycle_ != Lifecycle::kOpen) return;
  log_.log(LogLevel::kWarn, "backend_error", {{"error", why}});
  downstream_.reply(421, kBackendUnreachable);
  close_after_flush();
}

bool ControlSession::upstream_paused() const {
  return lifecycle_ != Lifecycle::kOpen || downstream_.backlogged();
}

void ControlSession::shared_port_granted(uint64_t reservation, uint16_t port) {
  transfers_.shared_port_granted(reservation, port);
}

void ControlSession::adopt_shared_data(uint64_t reservation, std::unique_ptr<data::SharedDataConnection> connection) {
  transfers_.adopt_shared_data(reservation, std::move(connection));
}

// ---------------------------------------------------------------------------------------
// Lifecycle

void ControlSession::deny(policy::Refusal reason, std::string_view command, int code, std::string_view text,
                          std::string_view message, std::string_view rule) {
  refuse(log_, downstream_, reason, command, code, text, message, rule);
}

void ControlSession::close_after_flush() {
  if (lifecycle_ != Lifecycle::kOpen) return;
  lifecycle_ = Lifecycle::kClosing;
  transfers_.retire_data_channel();
  upstream_.close();
  downstream_.close_after_flush();
}

void ControlSession::say_goodbye() {
  if (lifecycle_ != Lifecycle::kOpen) return;
  transfers_.cut_by_shutdown();
  downstream_.reply(421, "Service shutting down, closing control connection");
  close_after_flush();
}

void ControlSession::shut_down() {
  if (lifecycle_ == Lifecycle::kRetired) return;
  transfers_.cut_by_shutdown();
  close_now();
}

void ControlSession::close_now() {
  if (lifecycle_ == Lifecycle::kRetired) return;
  transfers_.session_ending();
  lifecycle_ = Lifecycle::kRetired;
  forget_password();
  auth_timer_.cancel();
  login_timer_.cancel();
  idle_timer_.cancel();
  upstream_.stop();
  downstream_.stop();
  services_.metrics->sessions_active(listener_.name).Decrement();
  // Retired (its limits released) before the log says so; the object lives until the
  // worker's reaper runs.
  retire_(id_);
  nlohmann::json fields = nlohmann::json::object();
  if (log_.suppressed() > 0) fields["denials_suppressed"] = log_.suppressed();
  log_.log(LogLevel::kInfo, "session_end", std::move(fields));
}

SessionReuse ControlSession::session_reuse() const {
  return class_.session_reuse_required.value_or(runtime_->config.tls.session_reuse_required);
}

std::string ControlSession::backend_name() const {
  return routed_backend_.empty() ? listener_.backend : routed_backend_;
}

}  // namespace ftpsgate::session
