// Bandwidth limits shared across threads (issue 15): a token bucket behind a mutex, the
// process-wide registry that hands the sessions of one user or class the same bucket, and
// the set of buckets one transfer draws from (session, user, class).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "policy/token_bucket.h"

namespace ftpsgate::data {

class SharedBucket {
 public:
  SharedBucket(uint64_t rate, policy::TokenBucket::Clock::time_point now)
      : bucket_(rate, policy::TokenBucket::default_burst(rate), now) {}
  uint64_t available(policy::TokenBucket::Clock::time_point now);
  void consume(uint64_t bytes, policy::TokenBucket::Clock::time_point now);
  std::chrono::nanoseconds wait_for(uint64_t bytes, policy::TokenBucket::Clock::time_point now);

 private:
  std::mutex mutex_;
  policy::TokenBucket bucket_;
};

// Buckets by key ("user/partners/alice/download@10000000"): sessions hold them, the
// registry only remembers them while one does (bounded by the live sessions).
class BandwidthRegistry {
 public:
  std::shared_ptr<SharedBucket> bucket(const std::string& key, uint64_t rate);

 private:
  std::mutex mutex_;
  std::map<std::string, std::weak_ptr<SharedBucket>> buckets_;
};

// The buckets one transfer's bytes must pass (empty = unlimited).
class Throttle {
 public:
  Throttle() = default;
  explicit Throttle(std::vector<std::shared_ptr<SharedBucket>> buckets) : buckets_(std::move(buckets)) {}
  bool limited() const { return !buckets_.empty(); }
  uint64_t available(policy::TokenBucket::Clock::time_point now) const;  // the least of them
  void consume(uint64_t bytes, policy::TokenBucket::Clock::time_point now) const;
  std::chrono::nanoseconds wait_for(uint64_t bytes, policy::TokenBucket::Clock::time_point now) const;

 private:
  std::vector<std::shared_ptr<SharedBucket>> buckets_;
};

}  // namespace ftpsgate::data
