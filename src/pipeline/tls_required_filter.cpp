#include "pipeline/tls_required_filter.h"

#include <algorithm>
#include <array>
#include <string>

namespace ftpsgate::pipeline {

namespace {

bool is_one_of(std::string_view verb, std::initializer_list<std::string_view> verbs) {
  return std::find(verbs.begin(), verbs.end(), verb) != verbs.end();
}

}  // namespace

policy::CommandKind tls_command_kind(const ftp::Command& command) {
  const std::string_view verb = command.verb;
  if (is_one_of(verb, {"USER", "PASS", "ACCT"})) return policy::CommandKind::kLogin;
  if (verb == "CCC") return policy::CommandKind::kCcc;
  if (verb == "PROT") {
    if (command.argument == "C" || command.argument == "c") return policy::CommandKind::kProtClear;
    if (command.argument == "P" || command.argument == "p") return policy::CommandKind::kProtPrivate;
    return policy::CommandKind::kOther;
  }
  if (is_one_of(verb, {"LIST", "NLST", "MLSD", "RETR", "STOR", "APPE", "STOU"})) {
    return policy::CommandKind::kDataTransfer;
  }
  return policy::CommandKind::kOther;
}

FilterVerdict TlsRequiredFilter::check(const ftp::Command&, policy::CommandKind kind,
                                       const SessionView& session) const {
  const policy::Decision decision = policy::check(session.tls_required, kind, session.channel);
  if (decision.allowed) return FilterVerdict::pass();
  return FilterVerdict::deny(decision.code, decision.message, decision.refusal);
}

}  // namespace ftpsgate::pipeline
