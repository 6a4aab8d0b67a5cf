#include "policy/login_throttle.h"

namespace ftpsgate::policy {

bool LoginThrottle::record_failure(const std::string& address, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  if (settings_.max_failures == 0) return false;
  if (entries_.size() >= settings_.max_tracked && entries_.find(address) == entries_.end()) evict(now);
  // SECURITY: when the table stays full, the oldest tracking is lost rather than memory.
  if (entries_.size() >= settings_.max_tracked) return false;
  Entry& entry = entries_[address];
  if (entry.failures > 0 && now - entry.last_failure > settings_.ban_time) entry.failures = 0;
  entry.last_failure = now;
  if (++entry.failures < settings_.max_failures) return false;
  entry.failures = 0;
  entry.banned_until = now + settings_.ban_time;
  return true;
}

bool LoginThrottle::banned(const std::string& address, Clock::time_point now) const {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(address);
  return it != entries_.end() && it->second.banned_until > now;
}

void LoginThrottle::evict(Clock::time_point now) {
  for (auto it = entries_.begin(); it != entries_.end();) {
    const bool stale = it->second.banned_until <= now && now - it->second.last_failure > settings_.ban_time;
    it = stale ? entries_.erase(it) : std::next(it);
  }
}

}  // namespace ftpsgate::policy
