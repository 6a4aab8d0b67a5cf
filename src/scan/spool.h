// Where an upload waits for its verdict: memory up to a threshold, then an unnamed file
// (O_TMPFILE, or created 0600 and unlinked at once), so no path ever names it and every
// exit path (abort, crash, kill) frees it with the descriptor.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <prometheus/gauge.h>

#include "net/unique_fd.h"

namespace ftpsgate::inspection {

// inspection.max_spool_bytes across every session and worker. Thread-safe.
class SpoolBudget {
 public:
  explicit SpoolBudget(uint64_t max_bytes) : max_(max_bytes) {}
  bool reserve(uint64_t bytes);
  void release(uint64_t bytes) {
    used_.fetch_sub(bytes);
    publish();
  }
  // ftpsgate_spool_bytes follows every change (set once, before any spool exists).
  void report_to(prometheus::Gauge* gauge) { gauge_ = gauge; }
  uint64_t used() const { return used_.load(); }
  uint64_t max() const { return max_.load(); }
  void set_max(uint64_t max_bytes) { max_.store(max_bytes); }  // a reload; held bytes stay
  bool full() const { return used_.load() >= max_.load(); }

 private:
  // Sets the gauge until it holds a value that is still current (threads racing to set it
  // leave the latest, not a stale one).
  void publish() const {
    if (gauge_ == nullptr) return;
    for (uint64_t seen = used_.load();;) {
      gauge_->Set(static_cast<double>(seen));
      const uint64_t now = used_.load();
      if (now == seen) return;
      seen = now;
    }
  }

  std::atomic<uint64_t> max_;
  prometheus::Gauge* gauge_ = nullptr;
  std::atomic<uint64_t> used_{0};
};

class Spool {
 public:
  struct Settings {
    std::string dir;
    std::size_t memory_threshold = std::size_t{1} << 20;
    SpoolBudget* budget = nullptr;  // required
  };
  explicit Spool(Settings settings);
  ~Spool();  // gives its bytes back to the budget; the file goes with its descriptor
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  // Appends; false when the budget is exhausted (full()) or the file cannot be written
  // (error()). Nothing is kept of a failed append.
  bool append(const char* data, std::size_t length);
  uint64_t size() const { return size_; }
  // Up to `length` bytes at `offset`: the count read (0 at the end), -1 on error.
  ssize_t read_at(uint64_t offset, char* out, std::size_t length) const;
  bool on_disk() const { return file_.get() >= 0; }
  bool full() const { return full_; }
  const std::string& error() const { return error_; }

 private:
  bool open_file();

  Settings settings_;
  std::vector<char> memory_;
  net::UniqueFd file_;
  uint64_t size_ = 0;
  uint64_t reserved_ = 0;
  bool full_ = false;
  std::string error_;
};

}  // namespace ftpsgate::inspection
