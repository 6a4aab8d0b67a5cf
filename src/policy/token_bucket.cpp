#include "policy/token_bucket.h"

#include <algorithm>
#include <cmath>

namespace ftpsgate::policy {

TokenBucket::TokenBucket(uint64_t rate, uint64_t burst, Clock::time_point now)
    : rate_(std::max<uint64_t>(rate, 1)), burst_(std::max<uint64_t>(burst, 1)),
      tokens_(static_cast<double>(burst_)), last_(now) {}

uint64_t TokenBucket::default_burst(uint64_t rate) { return std::max<uint64_t>(rate / 10, 16 * 1024); }

void TokenBucket::refill(Clock::time_point now) {
  if (now <= last_) return;
  const double seconds = std::chrono::duration<double>(now - last_).count();
  tokens_ = std::min(static_cast<double>(burst_), tokens_ + seconds * static_cast<double>(rate_));
  last_ = now;
}

uint64_t TokenBucket::available(Clock::time_point now) {
  refill(now);
  return tokens_ <= 0 ? 0 : static_cast<uint64_t>(tokens_);
}

void TokenBucket::consume(uint64_t bytes, Clock::time_point now) {
  refill(now);
  tokens_ -= static_cast<double>(bytes);
}

std::chrono::nanoseconds TokenBucket::wait_for(uint64_t bytes, Clock::time_point now) {
  refill(now);
  const double needed = static_cast<double>(std::min(bytes, burst_)) - tokens_;
  if (needed <= 0) return std::chrono::nanoseconds(0);
  const double seconds = needed / static_cast<double>(rate_);
  return std::chrono::nanoseconds(static_cast<int64_t>(std::ceil(seconds * 1e9)));
}

}  // namespace ftpsgate::policy
