// A one-shot, re-armable libevent timer calling a member callback.
#pragma once

#include <chrono>
#include <functional>

#include "net/libevent_handles.h"

namespace ftpsgate::net {

class Timer {
 public:
  Timer(event_base* base, std::function<void()> on_fire);
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  void arm(std::chrono::milliseconds after);
  void cancel();
  bool armed() const;

 private:
  static void trampoline(evutil_socket_t, short, void* self);
  std::function<void()> on_fire_;
  EventPtr event_;
};

}  // namespace ftpsgate::net
