#include "net/privileges.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ftpsgate::net {

bool drop_privileges(const std::string& user, std::string& error) {
  if (user.empty()) return true;
  const passwd* pw = getpwnam(user.c_str());
  if (pw == nullptr) {
    error = "user '" + user + "' does not exist";
    return false;
  }
  if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
    error = "cannot switch to user '" + user + "': " + std::strerror(errno);
    return false;
  }
  return true;
}

}  // namespace ftpsgate::net
