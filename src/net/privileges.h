// Dropping root after the sockets are bound (the `user` setting of both the gateway's and
// the agent's configuration).
#pragma once

#include <string>

namespace ftpsgate::net {

// Switches to `user` (its groups, group, then user id); "" keeps the current identity.
// False with `error` set when the user is unknown or the switch fails.
bool drop_privileges(const std::string& user, std::string& error);

}  // namespace ftpsgate::net
