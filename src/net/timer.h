// A one-shot, re-armable libevent timer calling a member callback.
#pragma once

#include <chrono>
#include <functional>

#include "net/libevent_handles.h"

namespace ftpsgate::net {

// libevent's form of a relative timeout.
timeval to_timeval(std::chrono::milliseconds after);

class Timer {
 public:
  Timer(event_base* base, std::function<void()> on_fire);
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  void arm(std::chrono::milliseconds after);
  // What is left until `deadline` (at once when it has passed): one deadline over steps.
  void arm_until(std::chrono::steady_clock::time_point deadline);
  void cancel();
  bool armed() const;

 private:
  static void trampoline(evutil_socket_t, short, void* self);
  std::function<void()> on_fire_;
  EventPtr event_;
};

}  // namespace ftpsgate::net
