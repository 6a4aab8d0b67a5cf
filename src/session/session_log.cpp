#include "session/session_log.h"

#include "pipeline/rules_filter.h"
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
  std::string reason = fields.value("reason", std::string(event));
  // Rules: bounded per rule (names come from the config, a bounded set).
  if (fields.contains("rule")) reason += "/" + fields["rule"].get<std::string>();
  const unsigned seen = ++logged_[reason];
  if (seen > kRecordsPerReason) {
    ++suppressed_;
    return;
  }
  if (seen == kRecordsPerReason) fields["further"] = "not logged, counted in session_end denials_suppressed";
  log(level, event, std::move(fields));
}

void SessionLog::denial(policy::Refusal reason, std::string_view command, int code, std::string_view text,
                        std::string_view message, std::string_view rule) {
  services_.metrics->policy_denials(policy::reason_name(reason)).Increment();
  nlohmann::json fields = {{"reason", policy::reason_name(reason)},
                           {"command", command},
                           {"reply", code},
                           {"message", message.empty() ? std::string(text) : std::string(message)}};
  if (!rule.empty()) {
    services_.metrics->command_denials(rule, pipeline::verb_label(command), "enforce").Increment();
    fields["rule"] = rule;
  }
  log_bounded(LogLevel::kInfo, "policy_denial", std::move(fields));
}

void SessionLog::monitored_denial(std::string_view rule, std::string_view command, std::string_view message) {
  services_.metrics->command_denials(rule, pipeline::verb_label(command), "monitor").Increment();
  log_bounded(LogLevel::kInfo, "policy_denial",
              {{"reason", "rule_monitor"}, {"rule", rule}, {"command", pipeline::verb_label(command)},
               {"enforced", false}, {"message", message}});
}

}  // namespace ftpsgate::session
