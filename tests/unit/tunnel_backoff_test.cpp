#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>

#include "tunnel/backoff.h"

using ftpsgate::tunnel::Backoff;
using std::chrono::milliseconds;

namespace {

// The highest value a uniform source in [0, 1) can return.
const double kAlmostOne = std::nextafter(1.0, 0.0);

}  // namespace

TEST_CASE("with no jitter every delay is the initial one") {
  Backoff backoff(milliseconds(250), milliseconds(30000), [] { return 0.0; });
  for (int i = 0; i < 20; ++i) CHECK(backoff.next() == milliseconds(250));
}

TEST_CASE("the jitter span doubles per failure up to max") {
  Backoff backoff(milliseconds(250), milliseconds(30000), [] { return kAlmostOne; });
  // initial + min(max, initial * 2^n), n = 0, 1, 2, ...
  CHECK(backoff.next() == milliseconds(250 + 250));
  CHECK(backoff.next() == milliseconds(250 + 500));
  CHECK(backoff.next() == milliseconds(250 + 1000));
  CHECK(backoff.next() == milliseconds(250 + 2000));
  CHECK(backoff.next() == milliseconds(250 + 4000));
  CHECK(backoff.next() == milliseconds(250 + 8000));
  CHECK(backoff.next() == milliseconds(250 + 16000));
  CHECK(backoff.next() == milliseconds(250 + 30000));  // 32000 capped
  for (int i = 0; i < 40; ++i) CHECK(backoff.next() == milliseconds(250 + 30000));
}

TEST_CASE("the exponent stops at 16 and never overflows") {
  Backoff backoff(milliseconds(1), milliseconds(std::numeric_limits<int64_t>::max() / 4), [] { return kAlmostOne; });
  for (int i = 0; i < 16; ++i) backoff.next();
  CHECK(backoff.exponent() == Backoff::kMaxExponent);
  CHECK(backoff.next() == milliseconds(1 + 65536));
  CHECK(backoff.next() == milliseconds(1 + 65536));
  CHECK(backoff.exponent() == 16);
}

TEST_CASE("a delay is the initial one plus a share of the span given by the random source") {
  double u = 0.5;
  Backoff backoff(milliseconds(100), milliseconds(1000), [&] { return u; });
  CHECK(backoff.next() == milliseconds(100 + 50));  // floor(0.5 * 101)
  u = 0.25;
  CHECK(backoff.next() == milliseconds(100 + 50));  // floor(0.25 * 201)
  u = 0.999;
  CHECK(backoff.next() == milliseconds(100 + 400));  // floor(0.999 * 401)
}

TEST_CASE("reset starts again from the initial span") {
  Backoff backoff(milliseconds(250), milliseconds(30000), [] { return kAlmostOne; });
  for (int i = 0; i < 5; ++i) backoff.next();
  CHECK(backoff.exponent() == 5);
  backoff.reset();
  CHECK(backoff.exponent() == 0);
  CHECK(backoff.next() == milliseconds(500));
  CHECK(backoff.next() == milliseconds(750));
}

TEST_CASE("random values outside [0, 1) are clamped into the bounds") {
  double u = 7.0;
  Backoff backoff(milliseconds(10), milliseconds(100), [&] { return u; });
  CHECK(backoff.next() == milliseconds(20));
  u = -3.0;
  CHECK(backoff.next() == milliseconds(10));
  u = std::numeric_limits<double>::quiet_NaN();
  CHECK(backoff.next() == milliseconds(10));
  u = 1.0;
  CHECK(backoff.next() == milliseconds(10 + 80));
}

TEST_CASE("a max below the initial delay bounds only the jitter") {
  Backoff backoff(milliseconds(500), milliseconds(100), [] { return kAlmostOne; });
  CHECK(backoff.next() == milliseconds(600));
  CHECK(backoff.next() == milliseconds(600));
}
