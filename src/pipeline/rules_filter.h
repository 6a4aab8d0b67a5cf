// The command, path and upload rules (issue 15) as a command filter: what a logged-in
// session may do to the backend's file tree. Pure: the rules, the command and the
// session's view (user, groups, class, working directory) decide.
#pragma once

#include <vector>

#include "pipeline/command_filter.h"
#include "rules/rule_set.h"

namespace ftpsgate::pipeline {

// The rule label of denials the gateway makes itself, whatever the rules say: a path it
// cannot resolve, a verb it does not understand, MDTM that would set a time.
inline constexpr std::string_view kGatewayRule = "gateway";

class RulesFilter final : public CommandFilter {
 public:
  explicit RulesFilter(const std::vector<rules::Rule>& rules) : rules_(rules) {}
  std::string_view name() const override { return "rules"; }
  FilterVerdict check(const ftp::Command& command, policy::CommandKind kind,
                      const SessionView& session) const override;

 private:
  const std::vector<rules::Rule>& rules_;
};

// Verbs that never touch the file tree and that the gateway relays under rules (TYPE,
// REST, PWD, ...). Any other verb that is not a rule verb is refused while rules apply:
// the gateway cannot vouch for what an unknown verb (MFMT, SITE-like extensions) does.
bool is_session_verb(std::string_view verb);

// The metric label for a verb: rule verbs and session verbs as they are, anything else
// "other" (the label set stays bounded whatever clients send).
std::string_view verb_label(std::string_view verb);

}  // namespace ftpsgate::pipeline
