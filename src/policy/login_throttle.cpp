#include "policy/login_throttle.h"

#include <limits>

namespace ftpsgate::policy {

namespace {
std::string_view user_key(std::string_view user) { return user.substr(0, kMaxTrackedUserNameLength); }
}  // namespace

bool FailureTable::record_failure(std::string_view key, Clock::time_point now, const Limits& limits) {
  if (limits.max_failures == 0 || limits.capacity == 0) return false;
  make_room(now, limits, false);
  auto it = entries_.find(std::string(key));
  if (it == entries_.end()) {
    make_room(now, limits, true);
    it = entries_.emplace(std::string(key), Entry{}).first;
    it->second.order = order_.insert(order_.end(), &it->first);
  } else {
    order_.splice(order_.end(), order_, it->second.order);
  }
  Entry& entry = it->second;
  // Forgotten only after a quiet ban_time; never by a success, never by the ban itself.
  if (entry.failures > 0 && now - entry.last_failure > limits.ban_time && entry.banned_until <= now) {
    entry.failures = 0;
  }
  entry.last_failure = now;
  if (entry.failures < std::numeric_limits<uint32_t>::max()) ++entry.failures;
  if (entry.failures < limits.max_failures || entry.banned_until > now) return false;
  // SECURITY: the count stays at or above max_failures, so logins that were in flight when
  // the ban fired, or the first failure after it ends, keep the key banned.
  entry.banned_until = now + limits.ban_time;
  return true;
}

void FailureTable::make_room(Clock::time_point now, const Limits& limits, bool need_slot) {
  // Least recent failure first: the stale ones (quiet for a ban_time, so neither banned nor
  // counting any more) leave first. At most kStaleEvictionsPerCall per call, so a caller
  // never holds the throttle lock (which admission takes too) for a long sweep; each
  // failure adds at most one entry, so the table still drains faster than it grows.
  constexpr std::size_t kStaleEvictionsPerCall = 8;
  std::size_t evicted = 0;
  while (!order_.empty()) {
    auto it = entries_.find(*order_.front());
    const bool stale = evicted < kStaleEvictionsPerCall && it->second.banned_until <= now &&
                       now - it->second.last_failure > limits.ban_time;
    const bool full = need_slot && entries_.size() >= limits.capacity;
    if (!stale && !full) break;
    ++evicted;
    // SECURITY: a table full of fresh entries (failures from more addresses or names than
    // the capacity within one ban_time) loses its least recent entry, not memory.
    order_.pop_front();
    entries_.erase(it);
  }
}

bool FailureTable::banned(std::string_view key, Clock::time_point now) const {
  auto it = entries_.find(std::string(key));
  return it != entries_.end() && it->second.banned_until > now;
}

uint32_t FailureTable::failures(std::string_view key) const {
  auto it = entries_.find(std::string(key));
  return it == entries_.end() ? 0 : it->second.failures;
}

LoginThrottle::Outcome LoginThrottle::record_failure(const std::string& address, std::string_view user,
                                                     Clock::time_point now) {
  std::lock_guard lock(mutex_);
  Outcome outcome;
  outcome.address_banned =
      addresses_.record_failure(address, now, {settings_.max_failures, settings_.ban_time, settings_.max_tracked});
  if (!user.empty()) {
    outcome.user_locked = users_.record_failure(
        user_key(user), now, {settings_.max_user_failures, settings_.ban_time, settings_.max_tracked_users});
  }
  return outcome;
}

bool LoginThrottle::banned(const std::string& address, Clock::time_point now) const {
  std::lock_guard lock(mutex_);
  return addresses_.banned(address, now);
}

bool LoginThrottle::user_locked(std::string_view user, Clock::time_point now) const {
  std::lock_guard lock(mutex_);
  return !user.empty() && users_.banned(user_key(user), now);
}

uint32_t LoginThrottle::failures(const std::string& address) const {
  std::lock_guard lock(mutex_);
  return addresses_.failures(address);
}

}  // namespace ftpsgate::policy
