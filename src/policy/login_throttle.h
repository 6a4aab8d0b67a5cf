// Failed-login accounting per client address: a ban after N failures, for a while. Pure
// (the caller passes the time), bounded in memory; locked, as workers share one table.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace ftpsgate::policy {

class LoginThrottle {
 public:
  using Clock = std::chrono::steady_clock;

  struct Settings {
    uint32_t max_failures = 10;  // 0 = never ban
    std::chrono::milliseconds ban_time{300000};
    std::size_t max_tracked = 100000;  // addresses remembered at most
  };

  explicit LoginThrottle(Settings settings) : settings_(settings) {}

  void set_settings(Settings settings) {
    std::lock_guard lock(mutex_);
    settings_ = settings;
  }
  // Returns true when this failure starts a ban.
  bool record_failure(const std::string& address, Clock::time_point now);
  void record_success(const std::string& address) {
    std::lock_guard lock(mutex_);
    entries_.erase(address);
  }
  bool banned(const std::string& address, Clock::time_point now) const;
  std::size_t tracked() const {
    std::lock_guard lock(mutex_);
    return entries_.size();
  }

 private:
  struct Entry {
    uint32_t failures = 0;
    Clock::time_point last_failure;
    Clock::time_point banned_until;
  };
  void evict(Clock::time_point now);

  mutable std::mutex mutex_;
  Settings settings_;
  std::unordered_map<std::string, Entry> entries_;
};

}  // namespace ftpsgate::policy
