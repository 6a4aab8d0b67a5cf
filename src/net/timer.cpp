#include "net/timer.h"

#include <algorithm>

namespace ftpsgate::net {

timeval to_timeval(std::chrono::milliseconds after) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(after.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((after.count() % 1000) * 1000);
  return tv;
}

Timer::Timer(event_base* base, std::function<void()> on_fire)
    : on_fire_(std::move(on_fire)), event_(evtimer_new(base, &Timer::trampoline, this)) {}

void Timer::arm(std::chrono::milliseconds after) {
  const timeval tv = to_timeval(after);
  evtimer_add(event_.get(), &tv);
}

void Timer::arm_until(std::chrono::steady_clock::time_point deadline) {
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  arm(std::max(left, std::chrono::milliseconds(0)));
}

void Timer::cancel() { evtimer_del(event_.get()); }

bool Timer::armed() const { return evtimer_pending(event_.get(), nullptr) != 0; }

void Timer::trampoline(evutil_socket_t, short, void* self) {
  static_cast<Timer*>(self)->on_fire_();
}

}  // namespace ftpsgate::net
