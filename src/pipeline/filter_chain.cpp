#include "pipeline/filter_chain.h"

#include "pipeline/rules_filter.h"
#include "pipeline/tls_required_filter.h"

namespace ftpsgate::pipeline {

void FilterChain::add(std::unique_ptr<CommandFilter> filter) { filters_.push_back(std::move(filter)); }

FilterVerdict FilterChain::run(const ftp::Command& command, policy::CommandKind kind,
                               const SessionView& session) const {
  ftp::Command current = command;
  std::optional<MonitoredDenial> monitored;
  for (const auto& filter : filters_) {
    FilterVerdict verdict = filter->check(current, kind, session);
    if (verdict.monitored && !monitored) monitored = std::move(verdict.monitored);
    switch (verdict.action) {
      case FilterVerdict::Action::kContinue:
        break;
      case FilterVerdict::Action::kRewrite:
        current = std::move(verdict.command);
        break;
      case FilterVerdict::Action::kDeny:
      case FilterVerdict::Action::kAnswer:
        return verdict;
    }
  }
  FilterVerdict result = FilterVerdict::pass();
  result.command = std::move(current);
  result.monitored = std::move(monitored);
  return result;
}

FilterChain default_filter_chain(const std::vector<rules::Rule>& rules) {
  FilterChain chain;
  chain.add(std::make_unique<TlsRequiredFilter>());
  if (!rules.empty()) chain.add(std::make_unique<RulesFilter>(rules));
  return chain;
}

}  // namespace ftpsgate::pipeline
