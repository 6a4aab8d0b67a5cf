#include "net/timer.h"

namespace ftpsgate::net {

Timer::Timer(event_base* base, std::function<void()> on_fire)
    : on_fire_(std::move(on_fire)), event_(evtimer_new(base, &Timer::trampoline, this)) {}

void Timer::arm(std::chrono::milliseconds after) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(after.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((after.count() % 1000) * 1000);
  evtimer_add(event_.get(), &tv);
}

void Timer::cancel() { evtimer_del(event_.get()); }

bool Timer::armed() const { return evtimer_pending(event_.get(), nullptr) != 0; }

void Timer::trampoline(evutil_socket_t, short, void* self) {
  static_cast<Timer*>(self)->on_fire_();
}

}  // namespace ftpsgate::net
