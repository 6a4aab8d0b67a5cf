#include "log/rate_limited_log.h"

#include <chrono>

#include "ftpsgate/limits.h"

namespace ftpsgate::log {

RateLimitedLog::RateLimitedLog(event_base* base, Logger& logger, std::string summary_event)
    : logger_(logger),
      summary_event_(std::move(summary_event)),
      bucket_(limits::kAgentRefusalLogRate, limits::kAgentRefusalLogBurst, policy::TokenBucket::Clock::now()),
      summary_(base, [this] { summarise(); }) {}

void RateLimitedLog::write(std::string_view event, const nlohmann::json& fields) {
  const auto now = policy::TokenBucket::Clock::now();
  if (bucket_.available(now) >= 1) {
    bucket_.consume(1, now);
    logger_.write(LogLevel::kWarn, event, fields);
    return;
  }
  // SECURITY: a peer provoking refusals in a loop cannot flood the log.
  if (suppressed_++ == 0) summary_.arm(limits::kAgentRefusalSummaryInterval);
}

void RateLimitedLog::summarise() {
  if (suppressed_ == 0) return;
  logger_.write(LogLevel::kWarn, summary_event_,
                {{"count", suppressed_},
                 {"seconds", std::chrono::seconds(limits::kAgentRefusalSummaryInterval).count()}});
  suppressed_ = 0;
}

}  // namespace ftpsgate::log
