// Which crypt(3) scheme a users-file hash names (pure): the config check rejects what
// verification would never accept, so a typo is an error at load, not a locked user.
#pragma once

#include <string_view>

namespace ftpsgate::identity {

enum class HashScheme { kYescrypt, kBcrypt, kSha512Crypt, kSha256Crypt, kUnsupported };

// By prefix: yescrypt ($y$), bcrypt ($2b$, $2y$, $2a$), sha512crypt ($6$), sha256crypt
// ($5$). DES, MD5 ($1$), plain text, "*" and "!" (locked accounts) are kUnsupported.
HashScheme hash_scheme(std::string_view hash);
std::string_view scheme_name(HashScheme scheme);

}  // namespace ftpsgate::identity
