// The policy seam in front of the command handlers: a command filter sees one client
// command and a read-only view of the session and decides what happens to it. Filters
// are pure (no sockets, no clocks), so each is unit-tested on its own.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "ftp/command.h"
#include "ftpsgate/tls_required.h"
#include "policy/refusal.h"
#include "policy/tls_policy.h"

namespace ftpsgate::pipeline {

enum class LoginPhase {
  kAwaitUser,  // no USER accepted yet (the backend may not even be chosen)
  kLogin,      // USER relayed, PASS/ACCT pending
  kLoggedIn,   // the backend accepted the login
};

// What a filter may know about the session. Views are built per command; filters must
// not keep them.
struct SessionView {
  std::string_view user;            // the USER name in force (the verified name at a gateway login)
  std::span<const std::string> groups;  // from the identity provider that verified the user
  std::string_view class_name;      // classes[].name
  TlsRequired tls_required = TlsRequired::kOn;  // effective for this class and user
  policy::ChannelState channel;     // control/data protection now, logged in
  LoginPhase phase = LoginPhase::kAwaitUser;
  std::string_view working_directory;  // absolute and normalised; empty while unknown
};

// A denial a rule in monitor mode (`enforce: false`) would have made: logged and counted,
// the command goes on.
struct MonitoredDenial {
  std::string rule;
  std::string message;
};

// One filter's answer. kContinue passes the (possibly rewritten) command on.
struct FilterVerdict {
  enum class Action {
    kContinue,  // the next filter, then the handler
    kDeny,      // refused: reply code+text, counted and logged under `reason`
    kAnswer,    // answered by the gateway: reply code+text, nothing reaches the backend
    kRewrite,   // `command` replaces the client's; the next filter sees the new one
  };
  Action action = Action::kContinue;
  int code = 0;
  std::string text;     // reply text (without the code)
  policy::Refusal reason = policy::Refusal::kControlNotProtected;  // kDeny: the vocabulary's reason
  std::string message;  // kDeny: the log's message; empty = the reply text
  std::string rule;     // kDeny by a rule: its name (labels ftpsgate_command_denials_total)
  ftp::Command command;  // kRewrite
  std::optional<MonitoredDenial> monitored;  // kContinue: what monitor mode let through

  static FilterVerdict pass() { return {}; }
  static FilterVerdict deny(int code, std::string_view text, policy::Refusal reason, std::string_view message = {}) {
    FilterVerdict verdict;
    verdict.action = Action::kDeny;
    verdict.code = code;
    verdict.text = text;
    verdict.reason = reason;
    verdict.message = message;
    return verdict;
  }
  static FilterVerdict monitor(std::string rule, std::string message) {
    FilterVerdict verdict;
    verdict.monitored = MonitoredDenial{std::move(rule), std::move(message)};
    return verdict;
  }
  static FilterVerdict answer(int code, std::string_view text) {
    FilterVerdict verdict;
    verdict.action = Action::kAnswer;
    verdict.code = code;
    verdict.text = text;
    return verdict;
  }
  static FilterVerdict rewrite(ftp::Command command) {
    FilterVerdict verdict;
    verdict.action = Action::kRewrite;
    verdict.command = std::move(command);
    return verdict;
  }
};

class CommandFilter {
 public:
  virtual ~CommandFilter() = default;
  // A stable name for logs and docs ("tls_required").
  virtual std::string_view name() const = 0;
  // `kind` is what the command means to the TLS policy, as the dispatcher classified it
  // (commands relayed before login count as kOther whatever their verb).
  virtual FilterVerdict check(const ftp::Command& command, policy::CommandKind kind,
                              const SessionView& session) const = 0;
};

}  // namespace ftpsgate::pipeline
