// "Free it later on the loop": an object that may be on the call stack right now (a
// session ending from its own callback, a data channel reporting its end) is handed over
// here and destroyed from the event loop, once the current callback chain has unwound.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <vector>

#include "net/timer.h"

namespace ftpsgate::net {

template <typename T>
class DeferredDelete {
 public:
  // `after` runs after each batch is freed (e.g. to hand memory back when idle).
  explicit DeferredDelete(event_base* base, std::function<void()> after = {})
      : after_(std::move(after)), timer_(base, [this] {
          items_.clear();
          if (after_) after_();
        }) {}
  DeferredDelete(const DeferredDelete&) = delete;
  DeferredDelete& operator=(const DeferredDelete&) = delete;

  void retire(std::unique_ptr<T> item) {
    if (!item) return;
    items_.push_back(std::move(item));
    timer_.arm(std::chrono::milliseconds(0));
  }
  // Frees at once (shutdown: nothing is on the stack any more).
  void clear() { items_.clear(); }
  std::size_t size() const { return items_.size(); }

 private:
  std::function<void()> after_;
  // The timer outlives the items: an item's destructor may still touch the loop.
  Timer timer_;
  std::vector<std::unique_ptr<T>> items_;
};

}  // namespace ftpsgate::net
