// The path an FTP command would touch, resolved the way the gateway can vouch for (issue 15,
// pure): the working directory joined with the argument, `.`, `..` and doubled slashes
// normalised. What the gateway cannot resolve unambiguously is an error, never a guess:
// the backend might read it differently (a backslash on a Windows server, `~` expansion,
// percent-encoding some servers decode, a NUL that ends the name early).
#pragma once

#include <string>
#include <string_view>
#include <variant>

namespace ftpsgate::rules {

enum class PathError {
  kNul,               // a NUL byte
  kControl,           // another control byte (CR/LF never reach here)
  kBackslash,         // a separator on some servers, a character on others
  kEncoded,           // %2e %2f %5c %00 and friends: decoded by some servers
  kTilde,             // ~ or ~user: home-directory expansion
  kTooLong,           // longer than kMaxPathLength once resolved
  kRelativeUnknown,   // a relative path while the working directory is unknown
};

inline constexpr std::size_t kMaxPathLength = 4096;

std::string_view path_error_text(PathError error);

// `cwd` is absolute and normalised ("" = unknown). The result is absolute, starts with
// '/', has no "." or ".." parts and no trailing or doubled slashes ("/" for the root). A
// ".." at the root stays at the root, as FTP servers do.
std::variant<std::string, PathError> resolve_path(std::string_view cwd, std::string_view argument);

}  // namespace ftpsgate::rules
