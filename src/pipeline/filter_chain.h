// Command filters run in order; the first that does not pass decides.
#pragma once

#include <memory>
#include <vector>

#include "pipeline/command_filter.h"
#include "rules/rule_set.h"

namespace ftpsgate::pipeline {

class FilterChain {
 public:
  void add(std::unique_ptr<CommandFilter> filter);
  std::size_t size() const { return filters_.size(); }

  // kDeny or kAnswer from the first filter that gives one; otherwise kContinue with
  // `command` set to the command the handler gets (rewritten by filters on the way).
  FilterVerdict run(const ftp::Command& command, policy::CommandKind kind, const SessionView& session) const;

 private:
  std::vector<std::unique_ptr<CommandFilter>> filters_;
};

// The chain every session gets: tls_required first, then the command, path and upload
// rules when there are any (`rules` must outlive the chain: the session's runtime).
FilterChain default_filter_chain(const std::vector<rules::Rule>& rules);

}  // namespace ftpsgate::pipeline
