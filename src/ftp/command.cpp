#include "ftp/command.h"

#include <cstddef>

namespace ftpsgate::ftp {

namespace {

constexpr std::size_t kMinVerb = 3;
constexpr std::size_t kMaxVerb = 8;
constexpr unsigned char kIac = 0xFF;  // telnet "interpret as command" (RFC 854)
constexpr unsigned char kDel = 0x7F;

bool is_ascii_letter(char ch) { return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z'); }

char to_upper_ascii(char ch) { return (ch >= 'a' && ch <= 'z') ? static_cast<char>(ch - 'a' + 'A') : ch; }

}  // namespace

std::optional<Command> parse_command(std::string_view line) {
  std::size_t verb_len = 0;
  while (verb_len < line.size() && is_ascii_letter(line[verb_len])) ++verb_len;
  if (verb_len < kMinVerb || verb_len > kMaxVerb) return std::nullopt;

  Command cmd;
  cmd.verb.reserve(verb_len);
  for (std::size_t i = 0; i < verb_len; ++i) cmd.verb.push_back(to_upper_ascii(line[i]));

  std::string_view rest = line.substr(verb_len);
  if (rest.find_first_not_of(' ') == std::string_view::npos) return cmd;  // "NOOP", "PWD  "
  if (rest.front() != ' ') return std::nullopt;                          // "AB1", "USER\tx"
  rest.remove_prefix(1);
  // SECURITY: CR, LF or NUL inside an argument would let "NOOP x\rDELE y" be read as two
  // commands by an upstream that splits lines differently (command smuggling past policy).
  if (rest.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos) return std::nullopt;
  cmd.argument.assign(rest);
  return cmd;
}

std::string telnet_escape(std::string_view line) {
  std::string out;
  out.reserve(line.size());
  for (const char ch : line) {
    out.push_back(ch);
    if (static_cast<unsigned char>(ch) == kIac) out.push_back(ch);
  }
  return out;
}

bool is_acceptable_user_name(std::string_view name) {
  // SECURITY: telnet IAC in USER ("ftp" IAC IAC IP "user"): the gateway decodes IAC IAC to
  // one 0xFF, a backend that decodes the relayed byte again sees IAC IP and logs in
  // "ftpuser", whose per-user tls_required was never looked up. Control bytes have no
  // place in an account name either (and would reach the logs).
  for (const char ch : name) {
    const auto byte = static_cast<unsigned char>(ch);
    if (byte < 0x20 || byte == kDel || byte == kIac) return false;
  }
  return true;
}

std::string redact_for_log(const Command& cmd) {
  // SECURITY: passwords never reach a log, not even their length or emptiness.
  if (cmd.verb == "PASS" || cmd.verb == "ACCT") return cmd.verb + " ****";
  if (cmd.argument.empty()) return cmd.verb;
  return cmd.verb + " " + cmd.argument;
}

}  // namespace ftpsgate::ftp
