#include "data/bandwidth.h"

#include <algorithm>

namespace ftpsgate::data {

uint64_t SharedBucket::available(policy::TokenBucket::Clock::time_point now) {
  std::lock_guard lock(mutex_);
  return bucket_.available(now);
}

void SharedBucket::consume(uint64_t bytes, policy::TokenBucket::Clock::time_point now) {
  std::lock_guard lock(mutex_);
  bucket_.consume(bytes, now);
}

std::chrono::nanoseconds SharedBucket::wait_for(uint64_t bytes, policy::TokenBucket::Clock::time_point now) {
  std::lock_guard lock(mutex_);
  return bucket_.wait_for(bytes, now);
}

std::shared_ptr<SharedBucket> BandwidthRegistry::bucket(const std::string& key, uint64_t rate) {
  std::lock_guard lock(mutex_);
  auto& slot = buckets_[key];
  if (auto live = slot.lock()) return live;
  auto fresh = std::make_shared<SharedBucket>(rate, policy::TokenBucket::Clock::now());
  slot = fresh;
  // Forget buckets no session holds any more, so the map stays as small as the live set.
  if (buckets_.size() > 64) std::erase_if(buckets_, [](const auto& entry) { return entry.second.expired(); });
  return fresh;
}

uint64_t Throttle::available(policy::TokenBucket::Clock::time_point now) const {
  uint64_t least = UINT64_MAX;
  for (const auto& bucket : buckets_) least = std::min(least, bucket->available(now));
  return least;
}

void Throttle::consume(uint64_t bytes, policy::TokenBucket::Clock::time_point now) const {
  for (const auto& bucket : buckets_) bucket->consume(bytes, now);
}

std::chrono::nanoseconds Throttle::wait_for(uint64_t bytes, policy::TokenBucket::Clock::time_point now) const {
  std::chrono::nanoseconds longest{0};
  for (const auto& bucket : buckets_) longest = std::max(longest, bucket->wait_for(bytes, now));
  return longest;
}

}  // namespace ftpsgate::data
