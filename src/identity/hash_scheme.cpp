#include "identity/hash_scheme.h"

namespace ftpsgate::identity {

namespace {
bool starts_with(std::string_view text, std::string_view prefix) { return text.substr(0, prefix.size()) == prefix; }
}  // namespace

HashScheme hash_scheme(std::string_view hash) {
  if (starts_with(hash, "$y$")) return HashScheme::kYescrypt;
  if (starts_with(hash, "$2b$") || starts_with(hash, "$2y$") || starts_with(hash, "$2a$")) return HashScheme::kBcrypt;
  if (starts_with(hash, "$6$")) return HashScheme::kSha512Crypt;
  if (starts_with(hash, "$5$")) return HashScheme::kSha256Crypt;
  return HashScheme::kUnsupported;
}

std::string_view scheme_name(HashScheme scheme) {
  switch (scheme) {
    case HashScheme::kYescrypt: return "yescrypt";
    case HashScheme::kBcrypt: return "bcrypt";
    case HashScheme::kSha512Crypt: return "sha512crypt";
    case HashScheme::kSha256Crypt: return "sha256crypt";
    case HashScheme::kUnsupported: break;
  }
  return "unsupported";
}

}  // namespace ftpsgate::identity
