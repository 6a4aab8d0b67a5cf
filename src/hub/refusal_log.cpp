#include "hub/refusal_log.h"

#include "ftpsgate/limits.h"

namespace ftpsgate::hub {

RefusalLog::RefusalLog(event_base* base, log::Logger& logger)
    : logger_(logger),
      bucket_(limits::kAgentRefusalLogRate, limits::kAgentRefusalLogBurst, policy::TokenBucket::Clock::now()),
      summary_(base, [this] { summarise(); }) {}

void RefusalLog::refused(std::string_view reason, const std::string& peer, const std::string& subject,
                         const std::string& message) {
  const auto now = policy::TokenBucket::Clock::now();
  if (bucket_.available(now) < 1) {
    if (suppressed_++ == 0) summary_.arm(limits::kAgentRefusalSummaryInterval);
    return;
  }
  bucket_.consume(1, now);
  nlohmann::json fields = {{"reason", reason}, {"peer", peer}};
  if (!subject.empty()) fields["subject"] = subject;
  if (!message.empty()) fields["message"] = message;
  logger_.write(LogLevel::kWarn, "agent_refused", fields);
}

void RefusalLog::summarise() {
  if (suppressed_ == 0) return;
  logger_.write(
      LogLevel::kWarn, "agent_refusals_suppressed",
      {{"count", suppressed_}, {"seconds", std::chrono::seconds(limits::kAgentRefusalSummaryInterval).count()}});
  suppressed_ = 0;
}

}  // namespace ftpsgate::hub
