// What the backend's reply to a relayed USER/PASS/ACCT means for the session, pure.
#pragma once

#include <string_view>

#include "pipeline/command_filter.h"

namespace ftpsgate::pipeline {

enum class LoginOutcome {
  kNone,      // not a login reply, or one that changes nothing (331, 332, 5xx to USER)
  kLoggedIn,  // 230: the session is logged in
  kFailed,    // 530 to PASS/ACCT: counted by the login throttle, maybe held back
};

LoginOutcome login_outcome(std::string_view verb, LoginPhase phase, int reply_code);

}  // namespace ftpsgate::pipeline
