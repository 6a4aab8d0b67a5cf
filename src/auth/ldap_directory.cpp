// Placeholder until the libldap client lands (branch i14-ldap).
#include "auth/ldap_directory.h"

namespace ftpsgate::auth {

LdapOutcome ldap_authenticate(const LdapSettings&, std::string_view, std::string_view) {
  LdapOutcome outcome;
  outcome.result = LdapOutcome::Result::kUnavailable;
  outcome.error = "ldap: not built";
  return outcome;
}

}  // namespace ftpsgate::auth
