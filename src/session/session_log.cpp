#include "session/session_log.h"

#include "policy/refusal.h"

namespace ftpsgate::session {

namespace {

// Events that belong in tls.log when one is configured (ProFTPD's TLSLog).
bool is_tls_event(std::string_view event, const nlohmann::json& fields) {
  if (event == "tls_handshake" || event == "ccc") return true;
  if (event != "policy_denial" || !fields.contains("reason")) return false;
  return policy::is_tls_reason(fields["reason"].get<std::string>());
}

}  // namespace

SessionLog::SessionLog(const Services& services, uint64_t id, std::string client, const std::string& listener,
                       const std::string& class_name, const std::string& user)
    : services_(services),
      id_(id),
      client_(std::move(client)),
      listener_(listener),
      class_name_(class_name),
      user_(user) {}

void SessionLog::log(LogLevel level, std::string_view event, nlohmann::json fields) const {
  if (!services_.logger->enabled(level)) return;
  fields["session"] = id_;
  fields["client"] = client_;
  fields["listener"] = listener_;
  fields["class"] = class_name_;
  if (!user_.empty()) fields["user"] = user_;
  log::Logger* target = services_.logger;
  if (services_.tls_logger != nullptr && is_tls_event(event, fields)) target = services_.tls_logger;
  target->write(level, event, fields);
}

void SessionLog::log_bounded(LogLevel level, std::string_view event, nlohmann::json fields) {
  // SECURITY: log amplification. A client repeating a refused command (a clear USER under
  // tls_required, thousands per second) must not turn each line into a log record: the
  // first few of each reason are logged, the rest counted on session_end (the metrics
  // still count every one). Bounded: reasons are a fixed vocabulary.
  const std::string reason = fields.value("reason", std::string(event));
  const unsigned seen = ++logged_[reason];
  if (seen > kRecordsPerReason) {
    ++suppressed_;
    return;
  }
  if (seen == kRecordsPerReason) fields["further"] = "not logged, counted in session_end denials_suppressed";
  log(level, event, std::move(fields));
}

void SessionLog::denial(policy::Refusal reason, std::string_view command, int code, std::string_view text,
                        std::string_view message) {
  services_.metrics->policy_denials(policy::reason_name(reason)).Increment();
  log_bounded(LogLevel::kInfo, "policy_denial",
              {{"reason", policy::reason_name(reason)},
               {"command", command},
               {"reply", code},
               {"message", message.empty() ? std::string(text) : std::string(message)}});
}

}  // namespace ftpsgate::session
