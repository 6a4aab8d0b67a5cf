// Command filters run in order; the first that does not pass decides.
#pragma once

#include <memory>
#include <vector>

#include "pipeline/command_filter.h"

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

// The chain every session gets: tls_required first (the later identity, command/path
// rules and HOST routing filters go after it).
FilterChain default_filter_chain();

}  // namespace ftpsgate::pipeline
