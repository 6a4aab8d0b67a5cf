// One gateway-side login decided by the provider chain (blocking: runs on the AuthPool).
// The first provider that knows the user decides; `passthrough` hands the login to the
// backend as before; nobody knowing the user is a failure.
#pragma once

#include <string>
#include <vector>

#include "ftpsgate/config.h"

namespace ftpsgate::auth {

struct LoginAttempt {
  std::vector<const AuthProviderConfig*> providers;  // in chain order ("passthrough" = nullptr)
  std::string user;
  std::string password;  // wiped by the destructor
  LoginAttempt() = default;
  LoginAttempt(const LoginAttempt&) = delete;
  LoginAttempt& operator=(const LoginAttempt&) = delete;
  ~LoginAttempt();
};

struct LoginDecision {
  enum class Result {
    kAuthenticated,
    kRejected,     // a provider knew the user and the password was wrong
    kUnknownUser,  // no provider knew the user
    kUnavailable,  // a provider could not decide (directory down): fail closed
    kPassthrough,  // the chain ended in passthrough: the backend decides
  };
  Result result = Result::kUnknownUser;
  std::string provider;  // the deciding provider's name ("" when none decided)
  std::vector<std::string> groups;
  const identity::UserEntry* entry = nullptr;  // file provider: the user's entry
  std::string error;                           // kUnavailable: why (never a password)
};

std::string_view result_name(LoginDecision::Result result);

LoginDecision decide_login(const LoginAttempt& attempt);

}  // namespace ftpsgate::auth
