// The `file` provider's users file (pure parser). One user per line:
//
//   name:hash                              htpasswd -B / -2 style
//   name:hash:lastchg:min:max:warn:::      an /etc/shadow line (fields after the hash ignored)
//   name:hash:groups:options               ftpsgate's own: groups comma-separated,
//                                          options "key=value;key=value"
//
// Options: backend (pool name), backend_user, backend_password_file, tls_required. Blank
// lines and lines starting with '#' are skipped.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "identity/secret.h"

namespace ftpsgate::identity {

struct UserEntry {
  std::string name;
  std::string password_hash;
  std::vector<std::string> groups;
  std::string backend;                 // "" = the session's backend
  std::string backend_user;            // "" = no per-user backend login
  std::string backend_password_file;   // read by the config loader
  Secret backend_password;             // filled by the config loader
  std::optional<std::string> tls_required;  // text; the config loader parses it
  int line = 0;
};

struct UsersFileError {
  int line = 0;    // 1-based
  int column = 0;  // 1-based
  std::string message;
};

struct UsersFile {
  std::map<std::string, UserEntry> users;
  std::vector<UsersFileError> errors;
};

// Bounds: a line over kMaxUsersFileLine bytes and more than kMaxGroupsPerUser groups are
// errors (the file is the admin's, but a runaway generator should not take the gateway).
inline constexpr std::size_t kMaxUsersFileLine = 8192;
inline constexpr std::size_t kMaxGroupsPerUser = 256;

UsersFile parse_users_file(std::string_view text);

}  // namespace ftpsgate::identity
