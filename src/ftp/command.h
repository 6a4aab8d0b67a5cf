// FTP command lines (RFC 959): "VERB[ SP argument]".
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace ftpsgate::ftp {

struct Command {
  std::string verb;      // upper-cased, letters only, 3..8 chars
  std::string argument;  // everything after the first space, unmodified
};

// nullopt for an empty line, a verb with non-letters, or a verb longer than 8 chars.
std::optional<Command> parse_command(std::string_view line);

// A line safe to log: PASS arguments (and anything after them) are redacted.
std::string redact_for_log(const Command& cmd);

}  // namespace ftpsgate::ftp
