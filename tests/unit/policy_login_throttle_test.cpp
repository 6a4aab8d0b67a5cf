#include <doctest/doctest.h>

#include "policy/login_throttle.h"

using ftpsgate::policy::LoginThrottle;
using namespace std::chrono_literals;

TEST_CASE("an address is banned after max_login_failures failures, for login_ban_time") {
  LoginThrottle throttle({3, 60s, 100});
  const auto t0 = LoginThrottle::Clock::time_point{} + 1000s;
  CHECK_FALSE(throttle.record_failure("10.0.0.1", t0));
  CHECK_FALSE(throttle.record_failure("10.0.0.1", t0 + 1s));
  CHECK_FALSE(throttle.banned("10.0.0.1", t0 + 1s));
  CHECK(throttle.record_failure("10.0.0.1", t0 + 2s));
  CHECK(throttle.banned("10.0.0.1", t0 + 3s));
  CHECK_FALSE(throttle.banned("10.0.0.2", t0 + 3s));
  CHECK_FALSE(throttle.banned("10.0.0.1", t0 + 63s));
}

TEST_CASE("a successful login clears the failures of an address") {
  LoginThrottle throttle({2, 60s, 100});
  const auto t0 = LoginThrottle::Clock::time_point{} + 1000s;
  CHECK_FALSE(throttle.record_failure("a", t0));
  throttle.record_success("a");
  CHECK_FALSE(throttle.record_failure("a", t0 + 1s));
  CHECK_FALSE(throttle.banned("a", t0 + 1s));
}

TEST_CASE("failures older than the ban time are forgotten") {
  LoginThrottle throttle({2, 10s, 100});
  const auto t0 = LoginThrottle::Clock::time_point{} + 1000s;
  CHECK_FALSE(throttle.record_failure("a", t0));
  CHECK_FALSE(throttle.record_failure("a", t0 + 11s));
  CHECK(throttle.record_failure("a", t0 + 12s));
}

TEST_CASE("max_login_failures 0 never bans") {
  LoginThrottle throttle({0, 10s, 100});
  const auto t0 = LoginThrottle::Clock::time_point{} + 1000s;
  for (int i = 0; i < 50; ++i) CHECK_FALSE(throttle.record_failure("a", t0));
  CHECK_FALSE(throttle.banned("a", t0));
  CHECK(throttle.tracked() == 0);
}

TEST_CASE("the table of tracked addresses is bounded") {
  LoginThrottle throttle({5, 10s, 4});
  const auto t0 = LoginThrottle::Clock::time_point{} + 1000s;
  for (int i = 0; i < 20; ++i) throttle.record_failure("10.0.0." + std::to_string(i), t0);
  CHECK(throttle.tracked() == 4);
  // Once entries are stale they make room again.
  throttle.record_failure("fresh", t0 + 30s);
  CHECK(throttle.tracked() == 1);
}
