// Rate-limited logging of refused requests (docs/agent-design.md 1.6): one policy::TokenBucket,
// 10 records a second with bursts of 50; what it drops is counted and summed up in one
// `agent_refusals_suppressed` record a minute. The metrics count every refusal regardless.
#pragma once

#include <cstdint>
#include <memory>

#include "log/logger.h"
#include "net/timer.h"
#include "policy/token_bucket.h"

namespace ftpsgate::agent {

class RefusalLog {
 public:
  static constexpr uint64_t kRate = 10;
  static constexpr uint64_t kBurst = 50;

  RefusalLog(event_base* base, log::Logger& logger);
  // Writes the record if the bucket allows it, else counts it as suppressed.
  void write(std::string_view event, const nlohmann::json& fields);

 private:
  void report();

  log::Logger& logger_;
  policy::TokenBucket bucket_;
  uint64_t suppressed_ = 0;
  net::Timer report_timer_;
};

}  // namespace ftpsgate::agent
