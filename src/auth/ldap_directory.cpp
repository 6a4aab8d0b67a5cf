#include "auth/ldap_directory.h"

#include <ldap.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>

#include "identity/ldap_escape.h"

namespace ftpsgate::auth {

namespace {

using identity::ldap_escape_dn_value;
using identity::ldap_escape_filter_value;
using identity::replace_placeholder;
using Result = LdapOutcome::Result;
using Clock = std::chrono::steady_clock;

// Two entries are enough to tell "exactly one" from "ambiguous".
constexpr int kUserSearchSizeLimit = 2;
constexpr std::size_t kMaxGroups = 256;
constexpr std::size_t kMaxGroupNameBytes = 256;
// The server's diagnostic message ends up in our log: bounded, printable ASCII only.
constexpr std::size_t kMaxDiagnosticBytes = 200;
// One step may connect (network timeout) and then wait for an answer or a TLS handshake
// (operation timeout): the watchdog allows both before it cuts the connection.
constexpr int kWatchdogTimeoutsPerStep = 2;

struct LdapUnbind {
  void operator()(LDAP* ld) const { ldap_unbind_ext_s(ld, nullptr, nullptr); }
};
using LdapHandle = std::unique_ptr<LDAP, LdapUnbind>;
struct MessageFree {
  void operator()(LDAPMessage* message) const { ldap_msgfree(message); }
};
using Message = std::unique_ptr<LDAPMessage, MessageFree>;
struct ValuesFree {
  void operator()(berval** values) const { ldap_value_free_len(values); }
};
using Values = std::unique_ptr<berval*, ValuesFree>;
struct MemFree {
  void operator()(char* text) const { ldap_memfree(text); }
};
using LdapString = std::unique_ptr<char, MemFree>;

LdapOutcome outcome(Result result, std::string error) {
  LdapOutcome out;
  out.result = result;
  out.error = std::move(error);
  return out;
}

timeval to_timeval(std::chrono::milliseconds timeout) {
  // A zero timeval means "poll, do not wait" to libldap: never what a config meant.
  const auto ms = std::max<std::chrono::milliseconds::rep>(timeout.count(), 1);
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms % 1000) * 1000);
  return tv;
}

// libldap 2.5 built with GnuTLS (Debian's) retries a TLS handshake in a busy loop that
// ignores LDAP_OPT_NETWORK_TIMEOUT when the peer accepts TCP but never answers (a stopped
// slapd, a non-TLS port): `ldapwhoami -o nettimeout=1 -H ldaps://...` spins forever. The
// watchdog shuts the socket down when a step overruns, so the handshake reads EOF and fails
// instead of pinning an auth worker and a core. Plain LDAP steps never need it (libldap
// honours LDAP_OPT_TIMEOUT there); it is the backstop for every step all the same.
class Watchdog {
 public:
  Watchdog() {
    callbacks_.lc_add = &on_connect;
    callbacks_.lc_del = &on_close;
    callbacks_.lc_arg = this;
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  ~Watchdog() {
    {
      const std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  // libldap keeps this pointer: the watchdog outlives the handle it is registered on.
  ldap_conncb* callbacks() { return &callbacks_; }

  // The thread is started once per authentication; false if the system refuses one.
  bool start() {
    try {
      thread_ = std::thread([this] { run(); });
      return true;
    } catch (const std::system_error&) {
      return false;
    }
  }

  // The next step has `budget` to finish.
  void step(std::chrono::milliseconds budget) {
    {
      const std::lock_guard lock(mutex_);
      deadline_ = Clock::now() + budget;
    }
    changed_.notify_all();
  }

  bool fired() {
    const std::lock_guard lock(mutex_);
    return fired_;
  }

 private:
  static int on_connect(LDAP*, Sockbuf* sb, LDAPURLDesc*, sockaddr*, ldap_conncb* ctx) {
    auto* self = static_cast<Watchdog*>(ctx->lc_arg);
    ber_socket_t fd = -1;
    ber_sockbuf_ctrl(sb, LBER_SB_OPT_GET_FD, &fd);
    const std::lock_guard lock(self->mutex_);
    self->fd_ = fd;
    return 0;
  }

  // Called before libldap closes the socket: from then on the number may be reused.
  static void on_close(LDAP*, Sockbuf*, ldap_conncb* ctx) {
    auto* self = static_cast<Watchdog*>(ctx->lc_arg);
    const std::lock_guard lock(self->mutex_);
    self->fd_ = -1;
  }

  void run() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      if (deadline_ == Clock::time_point::max()) {
        changed_.wait(lock);
      } else if (changed_.wait_until(lock, deadline_) == std::cv_status::timeout && Clock::now() >= deadline_) {
        deadline_ = Clock::time_point::max();
        fired_ = true;
        // The fd is the handle's and still open (on_close has not run): only shut down.
        if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
      }
    }
  }

  ldap_conncb callbacks_{};
  std::mutex mutex_;
  std::condition_variable changed_;
  int fd_ = -1;
  Clock::time_point deadline_ = Clock::time_point::max();
  bool fired_ = false;
  bool stopping_ = false;
  std::thread thread_;  // last: started by start() once everything above exists
};

// The directory connection of one authentication: every network step goes through here,
// so each has a deadline and every failure the same error text.
class Connection {
 public:
  explicit Connection(const LdapSettings& settings) : settings_(settings), tv_(to_timeval(settings.timeout)) {}

  // ldap_initialize only parses the URL; connect() opens the connection (and TLS).
  std::optional<LdapOutcome> open() {
    LDAP* raw = nullptr;
    const int rc = ldap_initialize(&raw, settings_.url.c_str());
    ld_.reset(raw);
    if (rc != LDAP_SUCCESS || ld_ == nullptr) {
      return unavailable(rc == LDAP_SUCCESS ? LDAP_LOCAL_ERROR : rc, "initialize");
    }
    const int version = LDAP_VERSION3;
    // SECURITY: every handshake verifies the directory's certificate and host name; the
    // options are set on this handle, so /etc/ldap/ldap.conf cannot weaken TLS_REQCERT.
    const int require_cert = LDAP_OPT_X_TLS_DEMAND;
    const int min_protocol = LDAP_OPT_X_TLS_PROTOCOL_TLS1_2;
    struct Option {
      int option;
      const void* value;
      const char* name;
    };
    const Option options[] = {
        {LDAP_OPT_PROTOCOL_VERSION, &version, "protocol_version"},
        {LDAP_OPT_NETWORK_TIMEOUT, &tv_, "network_timeout"},  // connect (and, in theory, TLS handshake)
        {LDAP_OPT_TIMEOUT, &tv_, "timeout"},                  // each synchronous operation
        // SECURITY: never follow a referral (a bind could be sent to another server).
        {LDAP_OPT_REFERRALS, LDAP_OPT_OFF, "referrals"},
        {LDAP_OPT_CONNECT_CB, watchdog_.callbacks(), "connect_cb"},
        {LDAP_OPT_X_TLS_REQUIRE_CERT, &require_cert, "tls_require_cert"},
        {LDAP_OPT_X_TLS_PROTOCOL_MIN, &min_protocol, "tls_protocol_min"},
    };
    for (const Option& o : options) {
      if (ldap_set_option(ld_.get(), o.option, o.value) != LDAP_OPT_SUCCESS) {
        return outcome(Result::kUnavailable, std::string("ldap: cannot set option ") + o.name);
      }
    }
    if (!settings_.ca_file.empty() &&
        ldap_set_option(ld_.get(), LDAP_OPT_X_TLS_CACERTFILE, settings_.ca_file.c_str()) != LDAP_OPT_SUCCESS) {
      return outcome(Result::kUnavailable, "ldap: cannot set option tls_cacertfile");
    }
    // The TLS options above take effect only in a context built after them (so: last).
    const int is_server = 0;
    if (ldap_set_option(ld_.get(), LDAP_OPT_X_TLS_NEWCTX, &is_server) != LDAP_OPT_SUCCESS) {
      return outcome(Result::kUnavailable,
                     with_diagnostic("ldap: cannot create the TLS context (is ca_file a readable PEM file?)"));
    }
    if (!watchdog_.start()) return outcome(Result::kUnavailable, "ldap: cannot start the watchdog thread");

    watchdog_.step(step_budget());
    int connected = ldap_connect(ld_.get());
    if (connected != LDAP_SUCCESS) return unavailable(connected, "connect");
    if (settings_.start_tls) {
      watchdog_.step(step_budget());
      connected = ldap_start_tls_s(ld_.get(), nullptr, nullptr);
      if (connected != LDAP_SUCCESS) return unavailable(connected, "start_tls");
    }
    return std::nullopt;
  }

  int bind(const std::string& dn, std::string_view password) {
    // The berval points at the caller's buffer: no copy of the password to wipe.
    berval credentials{};
    credentials.bv_val = const_cast<char*>(password.data());
    credentials.bv_len = password.size();
    watchdog_.step(step_budget());
    return ldap_sasl_bind_s(ld_.get(), dn.c_str(), LDAP_SASL_SIMPLE, &credentials, nullptr, nullptr, nullptr);
  }

  int search(const std::string& base, const std::string& filter, const char* attribute, int size_limit,
             Message& result) {
    std::string requested(attribute);
    char* attributes[] = {requested.data(), nullptr};
    timeval tv = tv_;
    LDAPMessage* raw = nullptr;
    watchdog_.step(step_budget());
    const int rc = ldap_search_ext_s(ld_.get(), base.c_str(), LDAP_SCOPE_SUBTREE, filter.c_str(), attributes, 0,
                                     nullptr, nullptr, &tv, size_limit, &raw);
    result.reset(raw);  // set even on most errors
    return rc;
  }

  LDAP* get() const { return ld_.get(); }

  LdapOutcome unavailable(int rc, std::string_view op) { return outcome(Result::kUnavailable, error(rc, op)); }

  // "ldap: <libldap's text> (<op>)", then what the server or the TLS layer said. Never
  // holds a password.
  std::string error(int rc, std::string_view op) {
    std::string text = "ldap: ";
    text += ldap_err2string(rc);
    text += " (";
    text += op;
    text += ')';
    if (watchdog_.fired()) return text + ": no answer within the timeout (TLS handshake?)";
    return with_diagnostic(std::move(text));
  }

 private:
  std::chrono::milliseconds step_budget() const { return kWatchdogTimeoutsPerStep * settings_.timeout; }

  std::string with_diagnostic(std::string text) {
    char* raw = nullptr;
    if (ld_ == nullptr || ldap_get_option(ld_.get(), LDAP_OPT_DIAGNOSTIC_MESSAGE, &raw) != LDAP_OPT_SUCCESS ||
        raw == nullptr) {
      return text;
    }
    const LdapString diagnostic(raw);
    std::string_view message(diagnostic.get());
    // GnuTLS builds report libldap's own certificate and host name checks as
    // gnutls_strerror(-1): say what it means.
    if (message == "(unknown error code)") message = "TLS certificate verification failed (ca_file, host name)";
    if (!message.empty()) {
      text += ": ";
      for (const char c : message.substr(0, kMaxDiagnosticBytes)) text += (c >= 0x20 && c < 0x7f) ? c : '?';
    }
    return text;
  }

  const LdapSettings& settings_;
  timeval tv_;
  // Member order: the handle is unbound (its lc_del callback runs) before the watchdog goes.
  Watchdog watchdog_;
  LdapHandle ld_;
};

// A wrong password (or an entry without one) is the user's problem; anything else is ours.
bool credentials_problem(int rc) { return rc == LDAP_INVALID_CREDENTIALS || rc == LDAP_INAPPROPRIATE_AUTH; }

// The failure, or nothing once bound. An empty service_dn means an anonymous search: no bind.
std::optional<LdapOutcome> bind_service(Connection& ldap, const LdapSettings& settings) {
  if (settings.service_dn.empty()) return std::nullopt;
  // SECURITY: an empty password would make this an unauthenticated bind, which succeeds.
  if (settings.service_password.empty()) return outcome(Result::kUnavailable, "ldap: empty service password (service bind)");
  const int rc = ldap.bind(settings.service_dn, settings.service_password);
  if (rc != LDAP_SUCCESS) return ldap.unavailable(rc, "service bind");
  return std::nullopt;
}

// Both placeholders in one pass: a DN or a user name that contains "{user}" or "{dn}"
// is inserted as it is, never expanded again.
std::string group_filter(const std::string& pattern, std::string_view escaped_dn, std::string_view escaped_user) {
  static constexpr std::string_view kDn = "{dn}";
  std::string out;
  std::size_t from = 0;
  for (std::size_t at = pattern.find(kDn); at != std::string::npos; at = pattern.find(kDn, from)) {
    out += replace_placeholder(pattern.substr(from, at - from), "user", escaped_user);
    out += escaped_dn;
    from = at + kDn.size();
  }
  out += replace_placeholder(pattern.substr(from), "user", escaped_user);
  return out;
}

LdapOutcome read_groups(Connection& ldap, const LdapSettings& settings, std::string_view user,
                        LdapOutcome authenticated) {
  // As the service account when there is one (it rebinds), else as the user just bound.
  if (!settings.service_dn.empty()) {
    if (auto failed = bind_service(ldap, settings)) return std::move(*failed);
  }
  const std::string filter =
      group_filter(settings.group_filter, ldap_escape_filter_value(authenticated.dn), ldap_escape_filter_value(user));
  Message result;
  const int rc = ldap.search(settings.group_base, filter, settings.group_attribute.c_str(),
                             static_cast<int>(kMaxGroups) + 1, result);
  // SECURITY: fail closed on a partial list; a group left out could be one a rule denies.
  if (rc == LDAP_SIZELIMIT_EXCEEDED) return outcome(Result::kUnavailable, "ldap: more than 256 groups (group search)");
  if (rc != LDAP_SUCCESS) return ldap.unavailable(rc, "group search");
  for (LDAPMessage* entry = ldap_first_entry(ldap.get(), result.get()); entry != nullptr;
       entry = ldap_next_entry(ldap.get(), entry)) {
    const Values values(ldap_get_values_len(ldap.get(), entry, settings.group_attribute.c_str()));
    if (values == nullptr) continue;  // a group without the attribute (or not readable)
    for (berval** value = values.get(); *value != nullptr; ++value) {
      const std::string_view name((*value)->bv_val, (*value)->bv_len);
      // Names no configuration can spell are skipped (they cannot match a rule).
      if (name.empty() || name.size() > kMaxGroupNameBytes || name.find('\0') != std::string_view::npos) continue;
      if (authenticated.groups.size() == kMaxGroups) {
        return outcome(Result::kUnavailable, "ldap: more than 256 groups (group search)");
      }
      authenticated.groups.emplace_back(name);
    }
  }
  return authenticated;
}

// The user's DN by search: kAuthenticated here only means "found exactly one entry".
LdapOutcome find_user(Connection& ldap, const LdapSettings& settings, std::string_view user) {
  if (auto failed = bind_service(ldap, settings)) return std::move(*failed);
  // SECURITY: the name is filter-escaped, so "*)(uid=*" matches nobody.
  const std::string filter = replace_placeholder(settings.search_filter, "user", ldap_escape_filter_value(user));
  Message result;
  const int rc = ldap.search(settings.search_base, filter, LDAP_NO_ATTRS, kUserSearchSizeLimit, result);
  // SECURITY: more than one entry is never resolved by picking one.
  if (rc == LDAP_SIZELIMIT_EXCEEDED) return outcome(Result::kRejected, "ldap: ambiguous user name (search)");
  if (rc != LDAP_SUCCESS) return ldap.unavailable(rc, "search");
  const int entries = ldap_count_entries(ldap.get(), result.get());
  if (entries < 0) return ldap.unavailable(LDAP_DECODING_ERROR, "search");
  if (entries == 0) return outcome(Result::kUnknownUser, "ldap: no such user (search)");
  if (entries > 1) return outcome(Result::kRejected, "ldap: ambiguous user name (search)");
  const LdapString dn(ldap_get_dn(ldap.get(), ldap_first_entry(ldap.get(), result.get())));
  // SECURITY: an empty DN would bind as nobody in particular.
  if (dn == nullptr || dn.get()[0] == '\0') return outcome(Result::kUnavailable, "ldap: entry without a DN (search)");
  LdapOutcome found;
  found.result = Result::kAuthenticated;
  found.dn = dn.get();
  return found;
}

}  // namespace

LdapOutcome ldap_authenticate(const LdapSettings& settings, std::string_view user, std::string_view password) {
  // SECURITY: an empty password is an unauthenticated bind, which most directories
  // accept; a NUL would be cut off by the directory. Neither reaches the network.
  if (password.empty()) return outcome(Result::kRejected, "ldap: empty password");
  if (password.find('\0') != std::string_view::npos) return outcome(Result::kRejected, "ldap: NUL in password");
  if (user.empty()) return outcome(Result::kRejected, "ldap: empty user name");

  Connection ldap(settings);
  if (auto failed = ldap.open()) return std::move(*failed);

  LdapOutcome user_entry;
  if (!settings.bind_dn_template.empty()) {
    // SECURITY: the name is DN-escaped, so it stays one RDN value of the template.
    user_entry.result = Result::kAuthenticated;
    user_entry.dn = replace_placeholder(settings.bind_dn_template, "user", ldap_escape_dn_value(user));
  } else {
    user_entry = find_user(ldap, settings, user);
    if (user_entry.result != Result::kAuthenticated) return user_entry;
  }

  const int rc = ldap.bind(user_entry.dn, password);
  if (credentials_problem(rc)) return outcome(Result::kRejected, ldap.error(rc, "user bind"));
  // The template made a DN the server cannot parse: the name cannot be a user.
  if (rc == LDAP_INVALID_DN_SYNTAX && !settings.bind_dn_template.empty()) {
    return outcome(Result::kRejected, ldap.error(rc, "user bind"));
  }
  if (rc != LDAP_SUCCESS) return ldap.unavailable(rc, "user bind");

  if (settings.group_base.empty()) return user_entry;
  return read_groups(ldap, settings, user, std::move(user_entry));
}

}  // namespace ftpsgate::auth
