// Password hashes of a users file (issue 14): crypt(3) strings as /etc/shadow and
// `htpasswd -B` write them, verified with libxcrypt. Only slow, salted schemes are
// accepted: yescrypt ($y$), bcrypt ($2b$, $2y$, $2a$), sha512crypt ($6$), sha256crypt ($5$).
#pragma once

#include <string>
#include <string_view>

#include "identity/hash_scheme.h"

namespace ftpsgate::auth {

using identity::hash_scheme;
using identity::HashScheme;
using identity::scheme_name;

// True when `password` matches `hash`. Never true for an unsupported scheme or an empty
// password; the comparison takes the same time wherever the strings differ. Costs what
// the scheme costs (milliseconds for yescrypt): call it off the event loop.
bool verify_password(std::string_view password, const std::string& hash);

}  // namespace ftpsgate::auth
