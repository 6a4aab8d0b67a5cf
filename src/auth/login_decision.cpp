#include "auth/login_decision.h"

#include <crypt.h>
#include <string.h>

#include "auth/password_hash.h"

namespace ftpsgate::auth {

namespace {

// SECURITY: a name no provider knows costs as much as a wrong password, so response
// times do not tell which accounts exist.
const std::string& decoy_hash() {
  static const std::string hash = [] {
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    if (crypt_gensalt_rn("$y$", 0, nullptr, 0, salt, sizeof(salt)) == nullptr) return std::string();
    crypt_data data{};
    const char* out = crypt_rn("decoy password", salt, &data, sizeof(data));
    return std::string(out != nullptr && out[0] != '*' ? out : "");
  }();
  return hash;
}

}  // namespace

LoginAttempt::~LoginAttempt() { explicit_bzero(password.data(), password.size()); }

std::string_view result_name(LoginDecision::Result result) {
  switch (result) {
    case LoginDecision::Result::kAuthenticated: return "success";
    case LoginDecision::Result::kRejected: return "failure";
    case LoginDecision::Result::kUnknownUser: return "unknown";
    case LoginDecision::Result::kUnavailable: return "error";
    case LoginDecision::Result::kPassthrough: return "passthrough";
  }
  return "?";
}

LoginDecision decide_login(const LoginAttempt& attempt) {
  LoginDecision decision;
  for (const AuthProviderConfig* provider : attempt.providers) {
    if (provider == nullptr) {
      decision.result = LoginDecision::Result::kPassthrough;
      decision.provider = "passthrough";
      return decision;
    }
    switch (provider->type) {
      case AuthProviderType::kFile: {
        if (!provider->users) break;
        auto it = provider->users->users.find(attempt.user);
        if (it == provider->users->users.end()) break;
        decision.provider = provider->name;
        decision.entry = &it->second;
        decision.groups = it->second.groups;
        decision.result = verify_password(attempt.password, it->second.password_hash)
                              ? LoginDecision::Result::kAuthenticated
                              : LoginDecision::Result::kRejected;
        return decision;
      }
      case AuthProviderType::kLdap: {
        LdapOutcome outcome = ldap_authenticate(provider->ldap, attempt.user, attempt.password);
        if (outcome.result == LdapOutcome::Result::kUnknownUser) break;
        decision.provider = provider->name;
        decision.groups = std::move(outcome.groups);
        decision.error = std::move(outcome.error);
        decision.result = outcome.result == LdapOutcome::Result::kAuthenticated ? LoginDecision::Result::kAuthenticated
                          : outcome.result == LdapOutcome::Result::kRejected ? LoginDecision::Result::kRejected
                                                                              : LoginDecision::Result::kUnavailable;
        return decision;
      }
      case AuthProviderType::kCertificate:
      case AuthProviderType::kPassthrough:
        break;  // decided on the session's loop before the attempt
    }
  }
  (void)verify_password(attempt.password.empty() ? "x" : attempt.password, decoy_hash());
  decision.result = LoginDecision::Result::kUnknownUser;
  return decision;
}

}  // namespace ftpsgate::auth
