// The threads that run gateway-side logins (issue 14): password hashing costs milliseconds
// (yescrypt, bcrypt) and a directory round trip more, so neither runs on an event loop.
// Bounded: at most `max_pending` jobs wait; a full queue refuses (the login fails closed).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace ftpsgate::auth {

class AuthPool {
 public:
  static constexpr int kNice = 10;

  AuthPool(unsigned threads, std::size_t max_pending);
  ~AuthPool();  // finishes running jobs, drops queued ones, joins
  AuthPool(const AuthPool&) = delete;
  AuthPool& operator=(const AuthPool&) = delete;

  // Thread-safe. False when the queue is full (nothing runs).
  bool submit(std::function<void()> job);
  std::size_t pending() const;

 private:
  void run();

  const std::size_t max_pending_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace ftpsgate::auth
