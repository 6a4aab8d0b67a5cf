#include "session/refuse.h"

#include "session/downstream_channel.h"
#include "session/session_log.h"

namespace ftpsgate::session {

void refuse(SessionLog& log, DownstreamChannel& client, policy::Refusal reason, std::string_view command, int code,
            std::string_view text, std::string_view message, std::string_view rule) {
  const policy::RefusalInfo& usual = policy::refusal_info(reason);
  if (code == 0) code = usual.code;
  if (text.empty()) text = usual.text;
  log.denial(reason, command, code, text, message, rule);
  client.reply(code, text);
}

}  // namespace ftpsgate::session
