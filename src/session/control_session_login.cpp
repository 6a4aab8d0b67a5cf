// ControlSession, gateway-side login (issue 14): with an `auth` chain the gateway answers
// USER and PASS itself, verifies the client on the auth pool (never on the loop), and only
// then connects to the backend and logs in there with the mapped credentials. A client
// that does not prove who it is never causes a byte to the backend.
#include <string.h>

#include "auth/auth_pool.h"
#include "policy/client_class.h"
#include "session/control_session.h"
#include "session/refuse.h"

namespace ftpsgate::session {

namespace {

nlohmann::json group_list(const std::vector<std::string>& groups) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& group : groups) list.push_back(group);
  return list;
}

}  // namespace

TlsRequired ControlSession::tls_required_now() const {
  // A users-file override applies to the verified identity only, never to a claimed name.
  if (phase_ == pipeline::LoginPhase::kLoggedIn && identity_tls_required_) return *identity_tls_required_;
  return policy::effective_tls_required(class_, user_);
}

void ControlSession::edge_user() {
  ++login_attempt_;
  certificate_user_.reset();
  forget_password();
  const AuthProviderConfig* first = auth_chain_.front();
  if (first != nullptr && first->type == AuthProviderType::kCertificate && client_certificate_) {
    certificate_user_ = identity::map_certificate(first->rules, *client_certificate_);
    // SECURITY: the certificate names the user; a USER naming someone else is an attempt
    // to borrow the certificate's trust for another account.
    if (certificate_user_ && certificate_user_->user != user_) {
      services_.metrics->auth_attempts(first->name, "failure").Increment();
      deny(policy::Refusal::kCertificateUserMismatch, "USER", 0, {},
           "USER names another user than the client certificate maps to");
      count_failed_login();
      certificate_user_.reset();
      edge_ = EdgeLogin::kOff;
      phase_ = pipeline::LoginPhase::kAwaitUser;
      return;
    }
  }
  edge_ = EdgeLogin::kAwaitPass;
  phase_ = pipeline::LoginPhase::kLogin;
  // The same reply for every name: it does not tell which accounts exist.
  downstream_.reply(331, "Password required");
}

void ControlSession::edge_pass(const ftp::Command& cmd) {
  if (edge_ != EdgeLogin::kAwaitPass) {
    downstream_.reply(503, "Login with USER first");
    return;
  }
  login_started_ = std::chrono::steady_clock::now();
  const AuthProviderConfig* first = auth_chain_.front();
  const bool certificate_first = first != nullptr && first->type == AuthProviderType::kCertificate;
  // Kept only in case the backend login is passthrough; wiped once sent or dropped.
  client_password_ = cmd.argument;
  if (certificate_first && !certificate_user_) {
    // SECURITY: a certificate provider in the chain makes a mapped certificate mandatory;
    // a password alone never stands in for it.
    services_.metrics->auth_attempts(first->name, "failure").Increment();
    forget_password();
    edge_ = EdgeLogin::kOff;
    phase_ = pipeline::LoginPhase::kAwaitUser;
    login_failed("PASS", ftp::make_reply(530, "Login incorrect"),
                 {{"provider", first->name}, {"reason", "no_certificate_user"}});
    return;
  }
  if (certificate_user_ && first->require == CertificateRequire::kCertificate) {
    // The certificate alone logs in: the password is not checked here (a passthrough
    // backend login still sends it, a service account does not).
    services_.metrics->auth_attempts(first->name, "success").Increment();
    services_.metrics->observe_auth(first->name, 0.0);
    edge_authenticated({certificate_user_->user, certificate_user_->groups, first->name}, nullptr);
    return;
  }
  auto attempt = std::make_shared<auth::LoginAttempt>();
  for (std::size_t i = certificate_first ? 1 : 0; i < auth_chain_.size(); ++i) attempt->providers.push_back(auth_chain_[i]);
  attempt->user = user_;
  attempt->password = cmd.argument;
  const uint64_t id = login_attempt_;
  edge_ = EdgeLogin::kVerifying;
  // The job holds the runtime (its providers and users tables) for as long as it runs.
  auto job = [attempt, runtime = runtime_, metrics = services_.metrics, in_session = services_.in_session,
              session = id_, id, started = login_started_] {
    auto decision = std::make_shared<auth::LoginDecision>(auth::decide_login(*attempt));
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    const std::string provider = decision->provider.empty() ? "none" : decision->provider;
    metrics->auth_attempts(provider, auth::result_name(decision->result)).Increment();
    metrics->observe_auth(provider, seconds);
    in_session(session, [decision, id](ControlSession& s) { s.login_decided(id, *decision); });
  };
  if (!services_.auth_pool->submit(std::move(job))) {
    services_.metrics->auth_attempts("none", "busy").Increment();
    edge_unavailable(policy::Refusal::kAuthUnavailable,
                     "auth.max_pending logins already waiting for a decision, closing connection");
    return;
  }
  auth_timer_.arm(runtime_->config.auth.timeout);
}

void ControlSession::login_decided(uint64_t attempt, const auth::LoginDecision& decision) {
  if (lifecycle_ != Lifecycle::kOpen || attempt != login_attempt_ || edge_ != EdgeLogin::kVerifying) return;
  auth_timer_.cancel();
  using Result = auth::LoginDecision::Result;
  switch (decision.result) {
    case Result::kAuthenticated: {
      std::vector<std::string> groups = certificate_user_ ? certificate_user_->groups : std::vector<std::string>{};
      groups.insert(groups.end(), decision.groups.begin(), decision.groups.end());
      edge_authenticated({user_, std::move(groups), decision.provider}, decision.entry);
      break;
    }
    case Result::kPassthrough:
      // The chain hands this login to the backend, as without `auth`: no mapping, no routing.
      edge_authenticated({user_, {}, "passthrough"}, nullptr);
      break;
    case Result::kRejected:
    case Result::kUnknownUser:
      forget_password();
      edge_ = EdgeLogin::kOff;
      phase_ = pipeline::LoginPhase::kAwaitUser;
      login_failed("PASS", ftp::make_reply(530, "Login incorrect"),
                   {{"provider", decision.provider.empty() ? "none" : decision.provider},
                    {"reason", decision.result == Result::kRejected ? "wrong_password" : "unknown_user"}});
      break;
    case Result::kUnavailable:
      edge_unavailable(policy::Refusal::kAuthUnavailable,
                       "auth provider '" + decision.provider + "' could not decide: " + decision.error);
      break;
  }
  process_lines();
}

void ControlSession::edge_authenticated(identity::Identity who, const identity::UserEntry* entry) {
  std::optional<identity::UserBackendFields> own;
  if (entry != nullptr) own = identity::UserBackendFields{entry->backend, entry->backend_user, &entry->backend_password};
  identity_tls_required_.reset();
  if (entry != nullptr) {
    for (const auto& provider : auth_chain_) {
      if (provider == nullptr || provider->name != who.provider || !provider->users) continue;
      auto it = provider->users->tls_required.find(who.user);
      if (it != provider->users->tls_required.end()) identity_tls_required_ = it->second;
    }
  }
  if (who.provider == "passthrough") {
    backend_login_ = identity::BackendLogin{{}, who.user, std::nullopt};
  } else {
    backend_login_ = identity::map_backend_login(who, class_.name, own, runtime_->config.auth.backend_logins);
  }
  authenticated_ = std::move(who);
  if (!backend_login_.backend.empty()) routed_backend_ = backend_login_.backend;
  edge_ = EdgeLogin::kBackendLogin;
  if (upstream_.connected() && upstream_.backend() == backend_name()) {
    send_backend_user();
    return;
  }
  if (upstream_.connected()) {
    // An earlier login on this connection went to another pool: that backend is left.
    upstream_.send_and_forget("QUIT");
    upstream_.close();
  }
  upstream_.connect(backend_name(), client_ip_, authenticated_->user);
}

void ControlSession::send_backend_user() {
  upstream_.send("USER " + backend_login_.user, [this](const ftp::Reply& reply) {
    if (reply.preliminary()) return;
    if (reply.code == 331 || reply.code == 332) {
      send_backend_pass();
      return;
    }
    backend_login_reply(reply);
  });
}

void ControlSession::send_backend_pass() {
  const std::string& password = backend_login_.service_account() ? backend_login_.password->reveal() : client_password_;
  std::string line = "PASS " + password;
  upstream_.send(line, [this](const ftp::Reply& reply) {
    if (!reply.preliminary()) backend_login_reply(reply);
  });
  explicit_bzero(line.data(), line.size());
  forget_password();
}

void ControlSession::backend_login_reply(const ftp::Reply& reply) {
  forget_password();
  if (edge_ != EdgeLogin::kBackendLogin) return;
  edge_ = EdgeLogin::kOff;
  const bool passthrough = authenticated_ && authenticated_->provider == "passthrough";
  if (reply.code == 230 || reply.code == 202) {
    user_ = authenticated_->user;
    nlohmann::json fields = {{"provider", authenticated_->provider},
                             {"backend_user", backend_login_.user},
                             {"groups", group_list(authenticated_->groups)}};
    if (!backend_login_.backend.empty()) fields["backend"] = backend_login_.backend;
    logged_in(std::move(fields));
    // Our own text: the backend's may name the service account.
    downstream_.reply(230, "Login successful");
    return;
  }
  if (passthrough) {
    // The backend decided, as without `auth`: an ordinary failed login.
    phase_ = pipeline::LoginPhase::kAwaitUser;
    authenticated_.reset();
    login_failed("PASS", reply.wire(), {{"provider", "passthrough"}, {"code", reply.code}});
    return;
  }
  log_.log(LogLevel::kWarn, "backend_login",
           {{"result", "refused"}, {"backend_user", backend_login_.user}, {"code", reply.code}});
  edge_unavailable(policy::Refusal::kBackendLoginRefused,
                   "the backend refused the login of a user the gateway verified, closing connection");
}

void ControlSession::edge_unavailable(policy::Refusal reason, std::string_view message) {
  forget_password();
  auth_timer_.cancel();
  edge_ = EdgeLogin::kOff;
  if (lifecycle_ != Lifecycle::kOpen) return;
  deny(reason, "PASS", 0, {}, message);
  close_after_flush();
}

void ControlSession::forget_password() {
  explicit_bzero(client_password_.data(), client_password_.size());
  client_password_.clear();
}

}  // namespace ftpsgate::session
