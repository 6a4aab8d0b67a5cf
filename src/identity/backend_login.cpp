#include "identity/backend_login.h"

#include <algorithm>

namespace ftpsgate::identity {

namespace {

bool listed(const std::vector<std::string>& list, const std::string& value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

bool applies(const BackendLoginRule& rule, const Identity& identity, const std::string& class_name) {
  if (rule.users.empty() && rule.groups.empty() && rule.classes.empty()) return true;
  if (listed(rule.users, identity.user) || listed(rule.classes, class_name)) return true;
  return std::any_of(identity.groups.begin(), identity.groups.end(),
                     [&](const std::string& group) { return listed(rule.groups, group); });
}

}  // namespace

BackendLogin map_backend_login(const Identity& identity, const std::string& class_name,
                               const std::optional<UserBackendFields>& own, const std::vector<BackendLoginRule>& rules) {
  BackendLogin login;
  login.user = identity.user;
  bool routed = false;
  bool credentials = false;
  if (own) {
    if (!own->backend.empty()) {
      login.backend = own->backend;
      routed = true;
    }
    if (!own->backend_user.empty()) {
      login.user = own->backend_user;
      if (own->backend_password != nullptr) login.password = *own->backend_password;
      credentials = true;
    }
  }
  for (const auto& rule : rules) {
    if (routed && credentials) break;
    if (!applies(rule, identity, class_name)) continue;
    if (!routed && !rule.backend.empty()) {
      login.backend = rule.backend;
      routed = true;
    }
    if (!credentials && !rule.backend_user.empty()) {
      login.user = rule.backend_user;
      login.password = rule.backend_password;
      credentials = true;
    }
  }
  return login;
}

}  // namespace ftpsgate::identity
