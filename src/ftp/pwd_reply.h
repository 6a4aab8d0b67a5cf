// The directory in a 257 reply (PWD, RFC 959 appendix II): `257 "/dir ""quoted"" name" is
// the current directory`. Pure.
#pragma once

#include <optional>
#include <string>

#include "ftp/reply.h"

namespace ftpsgate::ftp {

// The quoted name with doubled quotes undone; nullopt when the reply is not a 257 or its
// first line has no well-formed quoted name.
std::optional<std::string> pwd_directory(const Reply& reply);

}  // namespace ftpsgate::ftp
