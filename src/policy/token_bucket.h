// A token bucket for bandwidth limits (issue 15), pure: time comes in as an argument, so
// refill, debt and waits are unit-tested without clocks. Tokens are bytes.
#pragma once

#include <chrono>
#include <cstdint>

namespace ftpsgate::policy {

class TokenBucket {
 public:
  using Clock = std::chrono::steady_clock;

  // `rate` bytes per second, at most `burst` bytes saved up; starts full.
  TokenBucket(uint64_t rate, uint64_t burst, Clock::time_point now);

  uint64_t rate() const { return rate_; }
  // Bytes that may move now (0 while in debt).
  uint64_t available(Clock::time_point now);
  // Takes `bytes`; more than available leaves a debt that later refills pay first.
  void consume(uint64_t bytes, Clock::time_point now);
  // How long until at least `bytes` (capped at the burst) are available.
  std::chrono::nanoseconds wait_for(uint64_t bytes, Clock::time_point now);

  // The burst a limit gets: a tenth of a second of traffic, at least 16 KiB so slow limits
  // still move whole TLS records.
  static uint64_t default_burst(uint64_t rate);

 private:
  void refill(Clock::time_point now);

  uint64_t rate_;
  uint64_t burst_;
  double tokens_;  // may go negative (debt)
  Clock::time_point last_;
};

}  // namespace ftpsgate::policy
