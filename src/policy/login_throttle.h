// Failed-login accounting per client address and per user name: a ban after N failures,
// for a while. Pure (the caller passes the time), bounded in memory; locked, as the
// gateway and every worker share one instance.
//
// Rules (docs/configuration.md, limits.*):
// - Failures of an address are counted until login_ban_time passes without one; a
//   successful login does NOT reset them (an attacker holding one valid account could
//   otherwise guess another account's password without end).
// - At max_login_failures the address is banned for login_ban_time. The count is kept, so
//   failures that still arrive (logins in flight when the ban fired) keep it growing, and
//   the first failure after the ban bans again at once; only a quiet login_ban_time
//   forgets it.
// - The same for user names, whatever the addresses the failures come from:
//   max_user_login_failures locks the name for login_ban_time.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace ftpsgate::policy {

// SECURITY: the tables are keyed by attacker-controlled strings (addresses, user names):
// each has a capacity, and user names are accounted by at most this many bytes.
constexpr std::size_t kMaxTrackedAddresses = 100000;
constexpr std::size_t kMaxTrackedUsers = 100000;
constexpr std::size_t kMaxTrackedUserNameLength = 256;

// Failure counts by key, in order of their last failure (least recent first evicted).
class FailureTable {
 public:
  using Clock = std::chrono::steady_clock;

  struct Limits {
    uint32_t max_failures = 0;  // 0 = never ban
    std::chrono::milliseconds ban_time{300000};
    std::size_t capacity = 0;
  };

  // Returns true when this failure starts a ban (or renews one that had expired).
  bool record_failure(std::string_view key, Clock::time_point now, const Limits& limits);
  bool banned(std::string_view key, Clock::time_point now) const;
  uint32_t failures(std::string_view key) const;
  std::size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    uint32_t failures = 0;
    Clock::time_point last_failure;
    Clock::time_point banned_until;
    std::list<const std::string*>::iterator order;  // position in order_
  };
  // Drops stale entries; with `need_slot`, also the least recent ones down to capacity - 1.
  void make_room(Clock::time_point now, const Limits& limits, bool need_slot);

  std::unordered_map<std::string, Entry> entries_;
  std::list<const std::string*> order_;  // the keys in entries_ (nodes are stable), least recent failure first
};

class LoginThrottle {
 public:
  using Clock = std::chrono::steady_clock;

  struct Settings {
    uint32_t max_failures = 10;  // per address; 0 = never ban
    std::chrono::milliseconds ban_time{300000};
    std::size_t max_tracked = kMaxTrackedAddresses;  // addresses remembered at most
    uint32_t max_user_failures = 30;  // per user name, from any address; 0 = never lock
    std::size_t max_tracked_users = kMaxTrackedUsers;
  };

  struct Outcome {
    bool address_banned = false;  // this failure started a ban of the address
    bool user_locked = false;     // this failure locked the user name
  };

  explicit LoginThrottle(Settings settings) : settings_(settings) {}

  void set_settings(Settings settings) {
    std::lock_guard lock(mutex_);
    settings_ = settings;
  }
  // A failed login of `user` (may be empty) from `address`.
  Outcome record_failure(const std::string& address, std::string_view user, Clock::time_point now);
  bool banned(const std::string& address, Clock::time_point now) const;
  bool user_locked(std::string_view user, Clock::time_point now) const;
  uint32_t failures(const std::string& address) const;
  std::size_t tracked() const {
    std::lock_guard lock(mutex_);
    return addresses_.size();
  }
  std::size_t tracked_users() const {
    std::lock_guard lock(mutex_);
    return users_.size();
  }

 private:
  mutable std::mutex mutex_;
  Settings settings_;
  FailureTable addresses_;
  FailureTable users_;
};

}  // namespace ftpsgate::policy
