#include <doctest/doctest.h>

#include "policy/login_throttle.h"

using ftpsgate::policy::LoginThrottle;
using namespace std::chrono_literals;

namespace {
// Address limits as given, the per-user lock off unless asked for.
LoginThrottle::Settings settings(uint32_t max_failures, std::chrono::milliseconds ban_time, std::size_t max_tracked,
                                 uint32_t max_user_failures = 0, std::size_t max_tracked_users = 100) {
  LoginThrottle::Settings s;
  s.max_failures = max_failures;
  s.ban_time = ban_time;
  s.max_tracked = max_tracked;
  s.max_user_failures = max_user_failures;
  s.max_tracked_users = max_tracked_users;
  return s;
}
const auto t0 = LoginThrottle::Clock::time_point{} + 1000s;
}  // namespace

TEST_CASE("an address is banned after max_login_failures failures, for login_ban_time") {
  LoginThrottle throttle(settings(3, 60s, 100));
  CHECK_FALSE(throttle.record_failure("10.0.0.1", "u", t0).address_banned);
  CHECK_FALSE(throttle.record_failure("10.0.0.1", "u", t0 + 1s).address_banned);
  CHECK_FALSE(throttle.banned("10.0.0.1", t0 + 1s));
  CHECK(throttle.record_failure("10.0.0.1", "u", t0 + 2s).address_banned);
  CHECK(throttle.banned("10.0.0.1", t0 + 3s));
  CHECK_FALSE(throttle.banned("10.0.0.2", t0 + 3s));
  CHECK_FALSE(throttle.banned("10.0.0.1", t0 + 63s));
}

TEST_CASE("a successful login does not clear the failures of an address") {
  // The old record_success() erased them: one valid account bought unlimited guesses.
  // A success is simply not an event for the throttle; the count goes on.
  LoginThrottle throttle(settings(2, 60s, 100));
  CHECK_FALSE(throttle.record_failure("a", "victim", t0).address_banned);
  CHECK(throttle.failures("a") == 1);
  CHECK(throttle.record_failure("a", "victim", t0 + 1s).address_banned);
  CHECK(throttle.banned("a", t0 + 1s));
}

TEST_CASE("the count does not restart at 0 when the ban fires") {
  LoginThrottle throttle(settings(3, 60s, 100));
  for (int i = 0; i < 3; ++i) throttle.record_failure("a", "", t0 + std::chrono::seconds(i));
  REQUIRE(throttle.banned("a", t0 + 2s));
  CHECK(throttle.failures("a") == 3);
  // Logins in flight when the ban fired still fail: counted, no new ban reported.
  CHECK_FALSE(throttle.record_failure("a", "", t0 + 3s).address_banned);
  CHECK(throttle.failures("a") == 4);
  CHECK(throttle.banned("a", t0 + 3s));
  // The ban ends (60s after it fired), but failures came after it fired: the first failure
  // after the ban bans again at once instead of granting max_login_failures fresh guesses.
  REQUIRE_FALSE(throttle.banned("a", t0 + 62s + 1ms));
  CHECK(throttle.record_failure("a", "", t0 + 63s).address_banned);
  CHECK(throttle.banned("a", t0 + 63s));
  CHECK(throttle.banned("a", t0 + 122s));
}

TEST_CASE("failures are forgotten only after a quiet login_ban_time") {
  LoginThrottle throttle(settings(2, 10s, 100));
  CHECK_FALSE(throttle.record_failure("a", "", t0).address_banned);
  CHECK_FALSE(throttle.record_failure("a", "", t0 + 11s).address_banned);
  CHECK(throttle.record_failure("a", "", t0 + 12s).address_banned);
}

TEST_CASE("a user name is locked after max_user_login_failures failures from any addresses") {
  LoginThrottle throttle(settings(100, 60s, 100, 3));
  CHECK_FALSE(throttle.record_failure("10.0.0.1", "alice", t0).user_locked);
  CHECK_FALSE(throttle.record_failure("10.0.0.2", "alice", t0 + 1s).user_locked);
  CHECK_FALSE(throttle.record_failure("10.0.0.3", "bob", t0 + 1s).user_locked);
  CHECK_FALSE(throttle.user_locked("alice", t0 + 1s));
  const auto third = throttle.record_failure("10.0.0.4", "alice", t0 + 2s);
  CHECK(third.user_locked);
  CHECK_FALSE(third.address_banned);
  CHECK(throttle.user_locked("alice", t0 + 3s));
  CHECK_FALSE(throttle.user_locked("bob", t0 + 3s));
  CHECK_FALSE(throttle.user_locked("", t0 + 3s));
  CHECK_FALSE(throttle.banned("10.0.0.4", t0 + 3s));
  CHECK_FALSE(throttle.user_locked("alice", t0 + 63s));
}

TEST_CASE("user names are accounted by their first kMaxTrackedUserNameLength bytes") {
  LoginThrottle throttle(settings(100, 60s, 100, 2));
  const std::string prefix(ftpsgate::policy::kMaxTrackedUserNameLength, 'x');
  throttle.record_failure("10.0.0.1", prefix + "1", t0);
  throttle.record_failure("10.0.0.1", prefix + "2", t0);
  CHECK(throttle.tracked_users() == 1);
  CHECK(throttle.user_locked(prefix + "3", t0));
}

TEST_CASE("max_login_failures 0 never bans, max_user_login_failures 0 never locks") {
  LoginThrottle throttle(settings(0, 10s, 100, 0));
  for (int i = 0; i < 50; ++i) {
    const auto outcome = throttle.record_failure("a", "u", t0);
    CHECK_FALSE(outcome.address_banned);
    CHECK_FALSE(outcome.user_locked);
  }
  CHECK_FALSE(throttle.banned("a", t0));
  CHECK_FALSE(throttle.user_locked("u", t0));
  CHECK(throttle.tracked() == 0);
  CHECK(throttle.tracked_users() == 0);
}

TEST_CASE("the table of tracked addresses is bounded") {
  LoginThrottle throttle(settings(5, 10s, 4));
  for (int i = 0; i < 20; ++i) throttle.record_failure("10.0.0." + std::to_string(i), "", t0);
  CHECK(throttle.tracked() == 4);
  // Once entries are stale they make room again.
  throttle.record_failure("fresh", "", t0 + 30s);
  CHECK(throttle.tracked() == 1);
}

TEST_CASE("the table of tracked user names is bounded") {
  LoginThrottle throttle(settings(0, 10s, 4, 5, 3));
  for (int i = 0; i < 20; ++i) throttle.record_failure("10.0.0.1", "user" + std::to_string(i), t0);
  CHECK(throttle.tracked_users() == 3);
}

TEST_CASE("a full table drops its least recent entry, and keeps the counts of the others") {
  LoginThrottle throttle(settings(3, 60s, 3));
  throttle.record_failure("a", "", t0);
  throttle.record_failure("b", "", t0 + 1s);
  throttle.record_failure("c", "", t0 + 2s);
  throttle.record_failure("a", "", t0 + 3s);  // "a" is now the most recent
  throttle.record_failure("d", "", t0 + 4s);  // full: "b" goes
  CHECK(throttle.tracked() == 3);
  CHECK(throttle.failures("b") == 0);
  CHECK(throttle.failures("a") == 2);
  CHECK(throttle.failures("c") == 1);
  // A failure of a tracked key never evicts that key's own count.
  CHECK(throttle.record_failure("a", "", t0 + 5s).address_banned);
  CHECK(throttle.failures("a") == 3);
}

TEST_CASE("stale entries leave a few per failure, so no caller sweeps the whole table under the lock") {
  LoginThrottle throttle(settings(5, 10s, 1000));
  for (int i = 0; i < 100; ++i) throttle.record_failure("10.0.1." + std::to_string(i), "", t0);
  CHECK(throttle.tracked() == 100);
  // All 100 are stale now: one failure drops a bounded batch, not all of them.
  throttle.record_failure("fresh-0", "", t0 + 30s);
  CHECK(throttle.tracked() > 50);
  // ... and the table still drains faster than it grows.
  for (int i = 1; i < 20; ++i) throttle.record_failure("fresh-" + std::to_string(i), "", t0 + 30s);
  CHECK(throttle.tracked() == 20);
}
