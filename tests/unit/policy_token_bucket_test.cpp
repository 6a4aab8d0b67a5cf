#include <doctest/doctest.h>

#include "policy/token_bucket.h"

using ftpsgate::policy::TokenBucket;
using namespace std::chrono_literals;

TEST_CASE("token bucket: starts full, refills at the rate, never beyond the burst") {
  const auto t0 = TokenBucket::Clock::time_point{} + 1h;
  TokenBucket bucket(1000, 500, t0);
  CHECK(bucket.available(t0) == 500);
  bucket.consume(500, t0);
  CHECK(bucket.available(t0) == 0);
  CHECK(bucket.available(t0 + 100ms) == 100);
  CHECK(bucket.available(t0 + 10s) == 500);  // capped at the burst
}

TEST_CASE("token bucket: a debt is paid before anything moves again, and the wait says how long") {
  const auto t0 = TokenBucket::Clock::time_point{} + 1h;
  TokenBucket bucket(1000, 100, t0);
  bucket.consume(1100, t0);  // 1000 bytes of debt
  CHECK(bucket.available(t0 + 500ms) == 0);
  CHECK(bucket.wait_for(100, t0 + 500ms) == 600ms);  // 500 of debt left, then 100
  CHECK(bucket.available(t0 + 1100ms) == 100);
  CHECK(bucket.wait_for(50, t0 + 1100ms) == 0ns);
  // A request larger than the burst waits only for a full bucket.
  bucket.consume(100, t0 + 1100ms);
  CHECK(bucket.wait_for(1'000'000, t0 + 1100ms) == 100ms);
}

TEST_CASE("token bucket: over a long run the bytes moved match the rate") {
  auto now = TokenBucket::Clock::time_point{} + 1h;
  const auto start = now;
  TokenBucket bucket(10'000'000, TokenBucket::default_burst(10'000'000), now);
  uint64_t moved = 0;
  for (int step = 0; step < 100'000 && now - start < 10s; ++step) {
    const uint64_t room = bucket.available(now);
    if (room == 0) {
      now += bucket.wait_for(256 * 1024, now);
      continue;
    }
    const uint64_t chunk = std::min<uint64_t>(room, 256 * 1024);
    bucket.consume(chunk, now);
    moved += chunk;
  }
  const double seconds = std::chrono::duration<double>(now - start).count();
  CHECK(seconds >= 9.9);
  // The burst (1 MB) plus 10 s at 10 MB/s.
  CHECK(moved <= 101'000'000);
  CHECK(moved >= 99'000'000);
}
