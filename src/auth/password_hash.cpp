#include "auth/password_hash.h"

#include <crypt.h>

#include <algorithm>
#include <cstring>
#include <memory>

namespace ftpsgate::auth {

namespace {

bool same_bytes(std::string_view a, std::string_view b) {
  // No early exit: timing does not tell where a candidate hash differs.
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const std::size_t n = std::min(a.size(), b.size());
  for (std::size_t i = 0; i < n; ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace

bool verify_password(std::string_view password, const std::string& hash) {
  // SECURITY: an empty password never matches (as an LDAP unauthenticated bind must not),
  // nor does a NUL inside it (crypt would see a shorter password).
  if (password.empty() || password.find('\0') != std::string_view::npos) return false;
  if (hash_scheme(hash) == HashScheme::kUnsupported) return false;
  auto data = std::make_unique<crypt_data>();  // about 32 KiB: not on a thread's stack
  std::memset(data.get(), 0, sizeof(crypt_data));
  const std::string phrase(password);
  const char* out = crypt_rn(phrase.c_str(), hash.c_str(), data.get(), static_cast<int>(sizeof(crypt_data)));
  // crypt_rn returns nullptr on failure, never the "*0" failure token.
  const bool ok = out != nullptr && out[0] != '*' && same_bytes(out, hash);
  explicit_bzero(data.get(), sizeof(crypt_data));
  explicit_bzero(const_cast<char*>(phrase.data()), phrase.size());
  return ok;
}

}  // namespace ftpsgate::auth
