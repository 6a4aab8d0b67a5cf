// The session's logging context: every record it writes carries the session id, client,
// listener, class and user; records a client can make it repeat are bounded.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "policy/refusal.h"
#include "session/runtime.h"

namespace ftpsgate::session {

class SessionLog {
 public:
  // `user` is the session's own USER field, read at each record.
  SessionLog(const Services& services, uint64_t id, std::string client, const std::string& listener,
             const std::string& class_name, const std::string& user);

  bool enabled(LogLevel level) const { return services_.logger->enabled(level); }
  void log(LogLevel level, std::string_view event, nlohmann::json fields = nlohmann::json::object()) const;
  // A record a client can make us repeat (policy_denial, data_error, host): at most
  // kRecordsPerReason per reason (or event), the rest counted.
  void log_bounded(LogLevel level, std::string_view event, nlohmann::json fields);
  // A policy refusal: counted in policy_denials_total{reason} every time, logged bounded.
  void denial(policy::Refusal reason, std::string_view command, int code, std::string_view text,
              std::string_view message = {}, std::string_view rule = {});
  // A rule in monitor mode would have refused the command: counted and logged (bounded per
  // rule) as a policy_denial with "enforced": false; the command goes on.
  void monitored_denial(std::string_view rule, std::string_view command, std::string_view message);
  uint64_t suppressed() const { return suppressed_; }
  uint64_t id() const { return id_; }
  const std::string& user() const { return user_; }

 private:
  static constexpr unsigned kRecordsPerReason = 5;

  const Services& services_;
  uint64_t id_;
  std::string client_;
  const std::string& listener_;
  const std::string& class_name_;
  const std::string& user_;
  std::map<std::string, unsigned> logged_;
  uint64_t suppressed_ = 0;
};

}  // namespace ftpsgate::session
