// Backend credential mapping and routing (pure): which pool a gateway-authenticated user is
// sent to and under which account the gateway logs into the backend.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "identity/secret.h"

namespace ftpsgate::identity {

// Who the gateway decided the client is.
struct Identity {
  std::string user;
  std::vector<std::string> groups;
  std::string provider;  // the provider that decided ("file", an LDAP provider's name, ...)
};

// One `auth.backend_logins` entry: it applies when the user, one of the groups or the class
// is listed (an entry with no lists applies to everyone). Unset fields keep passthrough.
struct BackendLoginRule {
  std::vector<std::string> users;
  std::vector<std::string> groups;
  std::vector<std::string> classes;
  std::string backend;       // pool to route to ("" = the session's)
  std::string backend_user;  // "" = the client's own name and password
  Secret backend_password;   // with backend_user
};

struct BackendLogin {
  std::string backend;                // "" = the session's backend
  std::string user;                   // the name sent in USER
  std::optional<Secret> password;     // nullopt = the client's own password (passthrough)
  bool service_account() const { return password.has_value(); }
};

// A users-file entry's own backend fields, when the user came from a users file.
struct UserBackendFields {
  std::string backend;
  std::string backend_user;
  const Secret* backend_password = nullptr;
};

// The users-file entry's fields win, then the first matching rule supplies what is still
// unset (backend and credentials separately, so a group can route while a user's entry
// names the account).
BackendLogin map_backend_login(const Identity& identity, const std::string& class_name,
                               const std::optional<UserBackendFields>& own, const std::vector<BackendLoginRule>& rules);

}  // namespace ftpsgate::identity
