// max_sessions and max_sessions_per_ip across all workers: the acceptor admits, the worker
// that ends a session releases it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace ftpsgate::session {

class SessionLimits {
 public:
  enum class Admission { kAdmitted, kMaxSessions, kMaxSessionsPerIp };

  // `pending`: connections not yet sessions (PROXY headers in flight) that count too.
  Admission admit(const std::string& ip, std::size_t max_sessions, uint32_t max_per_ip, std::size_t pending = 0);
  void release(const std::string& ip);
  std::size_t total() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, uint32_t> per_ip_;
  std::size_t total_ = 0;
};

}  // namespace ftpsgate::session
