// The one way a session refuses a command: the usual code and text from the refusal
// vocabulary unless the caller has a more precise one, counted and logged, then replied.
#pragma once

#include <string_view>

#include "policy/refusal.h"

namespace ftpsgate::session {

class DownstreamChannel;
class SessionLog;

void refuse(SessionLog& log, DownstreamChannel& client, policy::Refusal reason, std::string_view command,
            int code = 0, std::string_view text = {}, std::string_view message = {}, std::string_view rule = {});

}  // namespace ftpsgate::session
