// Warn records that a peer can provoke at will (refused agents, refused requests), rate
// limited (docs/agent-design.md 1.6): one policy::TokenBucket, limits::kAgentRefusalLogRate a
// second with bursts of kAgentRefusalLogBurst; what it drops is counted and summed up in one
// `<summary_event>` record per kAgentRefusalSummaryInterval. One loop only.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "log/logger.h"
#include "net/timer.h"
#include "policy/token_bucket.h"

struct event_base;

namespace ftpsgate::log {

class RateLimitedLog {
 public:
  RateLimitedLog(event_base* base, Logger& logger, std::string summary_event);
  RateLimitedLog(const RateLimitedLog&) = delete;
  RateLimitedLog& operator=(const RateLimitedLog&) = delete;

  // Writes the warn record if the bucket allows it, else counts it as suppressed.
  void write(std::string_view event, const nlohmann::json& fields);

 private:
  void summarise();

  Logger& logger_;
  const std::string summary_event_;
  policy::TokenBucket bucket_;
  uint64_t suppressed_ = 0;
  net::Timer summary_;
};

}  // namespace ftpsgate::log
