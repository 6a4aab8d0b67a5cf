#include "pipeline/rules_filter.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>

#include "ftp/decimal.h"
#include "rules/command_access.h"
#include "rules/ftp_path.h"

namespace ftpsgate::pipeline {

namespace {

constexpr std::array<std::string_view, 30> kSessionVerbs = {
    "USER", "PASS", "ACCT", "AUTH", "PBSZ", "PROT", "CCC",  "FEAT", "HOST", "CLNT",
    "QUIT", "NOOP", "PASV", "EPSV", "PORT", "EPRT", "LPRT", "LPSV", "TYPE", "MODE",
    "STRU", "REST", "ALLO", "PWD",  "XPWD", "SYST", "HELP", "OPTS", "LANG", "ABOR"};

constexpr std::size_t kMaxLoggedArgument = 256;

std::string shown(std::string_view argument) {
  std::string text(argument.substr(0, kMaxLoggedArgument));
  if (argument.size() > kMaxLoggedArgument) text += "...";
  return text;
}

bool has_wildcard(std::string_view text) { return text.find_first_of("*?[") != std::string_view::npos; }

// "MDTM 20260101120000 file" sets the time on servers that allow it (vsftpd mdtm_write).
bool mdtm_sets_time(std::string_view argument) {
  std::size_t digits = 0;
  while (digits < argument.size() && std::isdigit(static_cast<unsigned char>(argument[digits])) != 0) ++digits;
  if (digits < 14) return false;
  const std::size_t space = argument.find(' ');
  return space != std::string_view::npos;
}

// SITE subcommands that name no path (vsftpd's HELP, UMASK, IDLE); others (SYMLINK, UTIME,
// CPFR on other servers) may touch paths the gateway cannot see in the argument.
bool site_without_path(std::string_view argument) {
  const std::string word = rules::upper_word(argument);
  return word == "HELP" || word == "UMASK" || word == "IDLE";
}

FilterVerdict gateway_denial(policy::Refusal reason, std::string message) {
  FilterVerdict verdict = FilterVerdict::deny(0, {}, reason, message);
  verdict.rule = kGatewayRule;
  return verdict;
}

FilterVerdict rule_denial(const rules::RuleVerdict& decided) {
  FilterVerdict verdict = FilterVerdict::deny(0, {}, policy::Refusal::kRuleDenied, decided.reason);
  verdict.rule = decided.rule;
  return verdict;
}

// ALLO's size against max_upload_size: a client that announces more is refused before it
// sends a byte.
FilterVerdict check_allo(const std::vector<rules::Rule>& rules, const rules::Subject& subject,
                         std::string_view argument) {
  const rules::UploadLimits limits = rules::upload_limits(rules, subject);
  if (!limits.max_size) return FilterVerdict::pass();
  const std::optional<uint64_t> size = ftp::parse_decimal(argument, false);
  if (!size) return FilterVerdict::pass();  // the backend answers 501
  if (*size <= *limits.max_size) return FilterVerdict::pass();
  std::string message = "ALLO " + std::to_string(*size) + " exceeds max_size " + std::to_string(*limits.max_size);
  if (!limits.enforce) return FilterVerdict::monitor(limits.rule, std::move(message));
  FilterVerdict verdict = FilterVerdict::deny(0, {}, policy::Refusal::kUploadTooLarge, message);
  verdict.rule = limits.rule;
  return verdict;
}

}  // namespace

bool is_session_verb(std::string_view verb) {
  return std::find(kSessionVerbs.begin(), kSessionVerbs.end(), verb) != kSessionVerbs.end();
}

std::string_view verb_label(std::string_view verb) {
  return rules::is_rule_verb(verb) || is_session_verb(verb) ? verb : std::string_view("other");
}

FilterVerdict RulesFilter::check(const ftp::Command& command, policy::CommandKind,
                                 const SessionView& session) const {
  if (session.phase != LoginPhase::kLoggedIn) return FilterVerdict::pass();
  const rules::Subject subject{std::string(session.user),
                               std::vector<std::string>(session.groups.begin(), session.groups.end()),
                               std::string(session.class_name)};
  if (!rules::any_rule_applies(rules_, subject)) return FilterVerdict::pass();
  const std::string& verb = command.verb;
  if (!rules::is_rule_verb(verb)) {
    if (verb == "ALLO") return check_allo(rules_, subject, command.argument);
    if (is_session_verb(verb)) return FilterVerdict::pass();
    return gateway_denial(policy::Refusal::kRuleDenied,
                          "verb " + shown(verb) + " is not one the rules know; refused while rules apply");
  }
  if (verb == "MDTM" && mdtm_sets_time(command.argument)) {
    return gateway_denial(policy::Refusal::kRuleDenied, "MDTM with a time would change the file; refused while rules apply");
  }
  const rules::CommandAccess access = rules::command_access(verb, command.argument);
  const bool path_rules = rules::path_rules_apply(rules_, subject);
  if (access.access == rules::Access::kSite && !access.path && path_rules && !site_without_path(command.argument)) {
    return gateway_denial(policy::Refusal::kPathUnresolvable,
                          "SITE " + shown(command.argument) + " refused: the gateway cannot tell which paths it touches");
  }
  std::optional<std::string> path;
  if (access.path && path_rules) {
    auto resolved = rules::resolve_path(session.working_directory, *access.path);
    if (const auto* error = std::get_if<rules::PathError>(&resolved)) {
      return gateway_denial(policy::Refusal::kPathUnresolvable,
                            "path '" + shown(*access.path) + "' refused: " + std::string(rules::path_error_text(*error)));
    }
    std::string target = std::move(std::get<std::string>(resolved));
    // A listing's last part may be a pattern the server expands within that directory;
    // anywhere else a wildcard would let the server pick paths the rules never saw.
    const std::size_t slash = target.rfind('/');
    if (access.access == rules::Access::kList && has_wildcard(target.substr(slash + 1))) {
      target = slash == 0 ? "/" : target.substr(0, slash);
    }
    if (has_wildcard(target)) {
      return gateway_denial(policy::Refusal::kPathUnresolvable,
                            "path '" + shown(*access.path) + "' refused: wildcard in path");
    }
    path = std::move(target);
  }
  const rules::RuleVerdict decided = rules::evaluate(rules_, subject, verb, path);
  switch (decided.outcome) {
    case rules::RuleVerdict::Outcome::kAllow:
      return FilterVerdict::pass();
    case rules::RuleVerdict::Outcome::kDeny:
      return rule_denial(decided);
    case rules::RuleVerdict::Outcome::kMonitor:
      return FilterVerdict::monitor(decided.rule, decided.reason);
  }
  return FilterVerdict::pass();
}

}  // namespace ftpsgate::pipeline
