// Switching to an unprivileged account once the sockets are bound (the top-level `user:`
// of the gateway's file and of the agent's).
#pragma once

#include <string>

namespace ftpsgate::net {

// setgid/initgroups/setuid to `user`; "" keeps the starting user. False with `error`.
bool drop_privileges(const std::string& user, std::string& error);

}  // namespace ftpsgate::net
