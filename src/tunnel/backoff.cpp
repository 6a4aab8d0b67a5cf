#include "tunnel/backoff.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <utility>

namespace ftpsgate::tunnel {

Backoff::Backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max, Random random)
    : initial_(std::max(initial, std::chrono::milliseconds(0))),
      max_(std::max(max, std::chrono::milliseconds(0))),
      random_(std::move(random)) {
  assert(random_);
}

std::chrono::milliseconds Backoff::next() {
  // min(max, initial * 2^n) without overflow: initial <= max / 2^n, else max.
  const int64_t initial = initial_.count();
  const int64_t max = max_.count();
  const int64_t span = initial <= (max >> failures_) ? initial << failures_ : max;
  double u = random_();
  if (!(u >= 0.0)) u = 0.0;  // also NaN
  if (u >= 1.0) u = std::nextafter(1.0, 0.0);
  // floor(u * (span + 1)) is uniform over 0..span and never above it for u < 1.
  const auto jitter = std::min(span, static_cast<int64_t>(u * static_cast<double>(span + 1)));
  failures_ = std::min(failures_ + 1, kMaxExponent);
  return std::chrono::milliseconds(initial + jitter);
}

Backoff::Random seeded_uniform() {
  auto engine = std::make_shared<std::mt19937_64>(std::random_device{}());
  return [engine] { return std::uniform_real_distribution<double>(0.0, 1.0)(*engine); };
}

}  // namespace ftpsgate::tunnel
