#include "session/session_limits.h"

namespace ftpsgate::session {

SessionLimits::Admission SessionLimits::admit(const std::string& ip, std::size_t max_sessions, uint32_t max_per_ip,
                                              std::size_t pending) {
  std::lock_guard lock(mutex_);
  if (total_ + pending >= max_sessions) return Admission::kMaxSessions;
  auto it = per_ip_.find(ip);
  if (it != per_ip_.end() && it->second >= max_per_ip) return Admission::kMaxSessionsPerIp;
  if (max_per_ip == 0) return Admission::kMaxSessionsPerIp;
  ++per_ip_[ip];
  ++total_;
  return Admission::kAdmitted;
}

void SessionLimits::release(const std::string& ip) {
  std::lock_guard lock(mutex_);
  auto it = per_ip_.find(ip);
  if (it == per_ip_.end()) return;
  if (--it->second == 0) per_ip_.erase(it);
  --total_;
}

std::size_t SessionLimits::total() const {
  std::lock_guard lock(mutex_);
  return total_;
}

}  // namespace ftpsgate::session
