// Reconnect backoff of the agent, per gateway address (docs/agent-design.md 1.4), pure:
// "full jitter", delay = initial + rand(0, min(max, initial * 2^n)), n the failures so far
// capped at kMaxExponent. reset() once a link reaches idle (and on ERR shutting_down, so a
// restarted gateway is refilled from `initial` on). The random source is injected.
#pragma once

#include <chrono>
#include <functional>

namespace ftpsgate::tunnel {

class Backoff {
 public:
  // A uniform double in [0, 1); values outside are clamped into it.
  using Random = std::function<double()>;
  static constexpr unsigned kMaxExponent = 16;

  Backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max, Random random);

  // The delay before the next attempt, counting one more failure.
  std::chrono::milliseconds next();
  void reset() { failures_ = 0; }
  unsigned exponent() const { return failures_; }

 private:
  std::chrono::milliseconds initial_;
  std::chrono::milliseconds max_;
  Random random_;
  unsigned failures_ = 0;  // n, at most kMaxExponent
};

// The random source of a running agent: a generator of its own, seeded from random_device.
Backoff::Random seeded_uniform();

}  // namespace ftpsgate::tunnel
