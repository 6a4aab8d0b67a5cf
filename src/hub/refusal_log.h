// agent_refused records, rate-limited (docs/agent-design.md 1.6): the internet reaches the
// agents listener, so a flood of refused connections must not become a flood of log lines.
// log::RateLimitedLog's bucket; the rest are counted and summed up in one
// agent_refusals_suppressed record per interval. Main loop only.
#pragma once

#include <string>
#include <string_view>

#include "log/logger.h"
#include "log/rate_limited_log.h"

namespace ftpsgate::hub {

class RefusalLog {
 public:
  RefusalLog(event_base* base, log::Logger& logger);
  // reason: the handshake result name (unknown_agent, source_not_allowed, ...); peer:
  // ip:port; subject: the verified certificate's subject, "" when there is none.
  void refused(std::string_view reason, const std::string& peer, const std::string& subject,
               const std::string& message = {});
  RefusalLog(const RefusalLog&) = delete;
  RefusalLog& operator=(const RefusalLog&) = delete;

 private:
  log::RateLimitedLog log_;
};

}  // namespace ftpsgate::hub
