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

// The verb is the leading ASCII letters (3..8 of them), followed by the end of the line,
// by spaces only (tolerated, argument ""), or by one space and the argument (verbatim).
// nullopt for anything else: empty line, leading space, verb of another length, a verb
// followed by another character, or CR/LF/NUL inside the argument.
std::optional<Command> parse_command(std::string_view line);

// The line as it goes upstream: every 0xFF byte doubled (IAC IAC, RFC 854; RFC 2640
// §3.1), so a backend's telnet decoder yields exactly the bytes the gateway decided on.
std::string telnet_escape(std::string_view line);

// A USER argument policy can be decided on: no control byte (< 0x20, 0x7F) and no 0xFF.
bool is_acceptable_user_name(std::string_view name);

// A line safe to log: "PASS ****" / "ACCT ****", else "VERB argument" (or "VERB").
std::string redact_for_log(const Command& cmd);

}  // namespace ftpsgate::ftp
