// The `ldap` provider's directory look-up (issue 14): OpenLDAP's libldap, synchronous
// calls with timeouts, run on the auth worker pool (never on an event loop).
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

namespace ftpsgate::auth {

struct LdapSettings {
  std::string url;                  // ldap://host:389 or ldaps://host:636 (space-separated list allowed)
  bool start_tls = false;           // ldap:// only: StartTLS before any bind
  std::string ca_file;              // CA for the directory's certificate ("" = system trust store)
  // Either a bind-DN template (direct bind as the user) ...
  std::string bind_dn_template;     // "uid={user},ou=people,dc=example,dc=org"; {user} is DN-escaped (RFC 4514)
  // ... or search-then-bind with a service account.
  std::string search_base;          // "ou=people,dc=example,dc=org"
  std::string search_filter = "(uid={user})";  // {user} is filter-escaped (RFC 4515)
  std::string service_dn;           // "" = anonymous search
  std::string service_password;     // from service_password_file (never logged)
  // Group membership ("" group_base = none looked up).
  std::string group_base;
  std::string group_filter = "(|(member={dn})(memberUid={user}))";  // {dn} and {user} filter-escaped
  std::string group_attribute = "cn";
  std::chrono::milliseconds timeout{5000};  // network and operation timeout, each step
};

struct LdapOutcome {
  enum class Result {
    kAuthenticated,  // the user's own bind succeeded
    kRejected,       // wrong password, empty password, or a name that cannot be a user
    kUnknownUser,    // search-then-bind found no entry (the next provider may know the user)
    kUnavailable,    // directory down, TLS failure, timeout, service bind refused: fail closed
  };
  Result result = Result::kUnavailable;
  std::string dn;                    // the user's entry when authenticated
  std::vector<std::string> groups;   // values of group_attribute of the groups found
  std::string error;                 // why (kRejected / kUnavailable), for the log; never a password
};

// Blocking: connects, (StartTLS), binds, searches, binds as the user, reads groups, unbinds.
// SECURITY: an empty password is never sent as a bind (an unauthenticated bind succeeds on
// most directories); a search that finds more than one entry is kRejected.
LdapOutcome ldap_authenticate(const LdapSettings& settings, std::string_view user, std::string_view password);

}  // namespace ftpsgate::auth
