#include "hub/refusal_log.h"

namespace ftpsgate::hub {

RefusalLog::RefusalLog(event_base* base, log::Logger& logger) : log_(base, logger, "agent_refusals_suppressed") {}

void RefusalLog::refused(std::string_view reason, const std::string& peer, const std::string& subject,
                         const std::string& message) {
  nlohmann::json fields = {{"reason", reason}, {"peer", peer}};
  if (!subject.empty()) fields["subject"] = subject;
  if (!message.empty()) fields["message"] = message;
  log_.write("agent_refused", fields);
}

}  // namespace ftpsgate::hub
