#include "agent/refusal_log.h"

namespace ftpsgate::agent {

namespace {
constexpr std::chrono::minutes kReportEvery{1};
}  // namespace

RefusalLog::RefusalLog(event_base* base, log::Logger& logger)
    : logger_(logger),
      bucket_(kRate, kBurst, policy::TokenBucket::Clock::now()),
      report_timer_(base, [this] { report(); }) {}

void RefusalLog::write(std::string_view event, const nlohmann::json& fields) {
  const auto now = policy::TokenBucket::Clock::now();
  if (bucket_.available(now) >= 1) {
    bucket_.consume(1, now);
    logger_.write(LogLevel::kWarn, event, fields);
    return;
  }
  // SECURITY: a gateway sending refused requests in a loop cannot flood the log.
  ++suppressed_;
  if (!report_timer_.armed()) report_timer_.arm(kReportEvery);
}

void RefusalLog::report() {
  if (suppressed_ == 0) return;
  logger_.write(LogLevel::kWarn, "agent_refusals_suppressed", {{"count", suppressed_}});
  suppressed_ = 0;
}

}  // namespace ftpsgate::agent
