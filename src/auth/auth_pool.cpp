#include "auth/auth_pool.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "net/thread_signals.h"

namespace ftpsgate::auth {

AuthPool::AuthPool(unsigned threads, std::size_t max_pending) : max_pending_(max_pending) {
  for (unsigned i = 0; i < threads; ++i) threads_.emplace_back([this] { run(); });
}

AuthPool::~AuthPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    jobs_.clear();
  }
  wake_.notify_all();
  for (auto& thread : threads_) thread.join();
}

bool AuthPool::submit(std::function<void()> job) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ || jobs_.size() >= max_pending_) return false;
    jobs_.push_back(std::move(job));
  }
  wake_.notify_one();
  return true;
}

std::size_t AuthPool::pending() const {
  std::lock_guard lock(mutex_);
  return jobs_.size();
}

void AuthPool::run() {
  net::leave_signals_to_main_thread();
  // Hashing is the one CPU-bound job in the process: below the event loops' priority (Linux
  // nice values are per thread), so a burst of logins takes spare cycles, not the loops'.
  (void)setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), kNice);
  while (true) {
    std::function<void()> job;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (stopping_) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job();
  }
}

}  // namespace ftpsgate::auth
