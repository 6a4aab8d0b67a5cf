#include <crypt.h>
#include <doctest/doctest.h>

#include <string>

#include "auth/password_hash.h"

using ftpsgate::auth::HashScheme;
using ftpsgate::auth::hash_scheme;
using ftpsgate::auth::verify_password;

namespace {

// A fresh crypt(3) hash of `password` with libxcrypt's default cost for `prefix`.
std::string make_hash(const char* prefix, const char* password) {
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  REQUIRE(crypt_gensalt_rn(prefix, 0, nullptr, 0, salt, sizeof(salt)) != nullptr);
  crypt_data data{};
  const char* out = crypt_rn(password, salt, &data, sizeof(data));
  REQUIRE(out != nullptr);
  return out;
}

}  // namespace

TEST_CASE("yescrypt, bcrypt, sha512crypt and sha256crypt hashes verify the right password only") {
  for (const char* prefix : {"$y$", "$2b$", "$6$", "$5$"}) {
    INFO(prefix);
    const std::string hash = make_hash(prefix, "correct horse");
    CHECK(hash_scheme(hash) != HashScheme::kUnsupported);
    CHECK(verify_password("correct horse", hash));
    CHECK_FALSE(verify_password("correct hors", hash));
    CHECK_FALSE(verify_password("correct horse ", hash));
    CHECK_FALSE(verify_password("", hash));
    CHECK_FALSE(verify_password(std::string("correct horse\0x", 15), hash));
    CHECK_FALSE(verify_password("correct horse", hash.substr(0, hash.size() - 1)));
  }
}

TEST_CASE("weak or locked hash strings never verify") {
  const std::string md5 = "$1$abcdefgh$0123456789abcdefghijkl";  // md5crypt
  CHECK(hash_scheme(md5) == HashScheme::kUnsupported);
  CHECK_FALSE(verify_password("secret", md5));
  CHECK_FALSE(verify_password("secret", "secret"));  // plain text is not a hash
  CHECK_FALSE(verify_password("secret", "!"));
  CHECK_FALSE(verify_password("secret", "*"));
  CHECK_FALSE(verify_password("secret", ""));
  CHECK(hash_scheme("$2y$05$abcdefghijklmnopqrstuu") == HashScheme::kBcrypt);  // htpasswd -B
}
