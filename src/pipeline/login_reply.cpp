#include "pipeline/login_reply.h"

namespace ftpsgate::pipeline {

LoginOutcome login_outcome(std::string_view verb, LoginPhase phase, int reply_code) {
  const bool login_verb = verb == "USER" || verb == "PASS" || verb == "ACCT";
  if (!login_verb || phase != LoginPhase::kLogin) return LoginOutcome::kNone;
  if (reply_code == 230) return LoginOutcome::kLoggedIn;
  // A 530 to USER is the backend refusing the name before any password: no guess was made.
  if (reply_code == 530 && verb != "USER") return LoginOutcome::kFailed;
  return LoginOutcome::kNone;
}

}  // namespace ftpsgate::pipeline
