// libFuzzer target: the FTP command parser (src/ftp/command.h) on one control line.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "ftp/command.h"
#include "fuzz_check.h"

namespace {

char upper_ascii(char ch) { return (ch >= 'a' && ch <= 'z') ? static_cast<char>(ch - 'a' + 'A') : ch; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ftpsgate::ftp;
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  const auto cmd = parse_command(line);
  if (!cmd) return 0;
  const std::string& verb = cmd->verb;
  const std::string& argument = cmd->argument;

  // The verb: 3..8 upper-case ASCII letters, the input's leading letters upper-cased.
  FUZZ_CHECK(verb.size() >= 3 && verb.size() <= 8);
  FUZZ_CHECK(line.size() >= verb.size());
  for (std::size_t i = 0; i < verb.size(); ++i) {
    FUZZ_CHECK(verb[i] >= 'A' && verb[i] <= 'Z');
    FUZZ_CHECK(upper_ascii(line[i]) == verb[i]);
  }
  // After the verb: only spaces (argument ""), or one space and the argument verbatim.
  const std::string_view rest = line.substr(verb.size());
  if (argument.empty()) {
    FUZZ_CHECK(rest.find_first_not_of(' ') == std::string_view::npos);
  } else {
    FUZZ_CHECK(rest.size() == argument.size() + 1 && rest[0] == ' ' && rest.substr(1) == argument);
  }
  // SECURITY: nothing that an upstream could read as a second command.
  FUZZ_CHECK(argument.find_first_of(std::string_view("\r\n\0", 3)) == std::string::npos);

  // What the gateway sends upstream parses back to the same command.
  const std::string wire = argument.empty() ? verb : verb + " " + argument;
  const auto again = parse_command(wire);
  FUZZ_CHECK(again && again->verb == verb && again->argument == argument);

  // Passwords never reach a log line.
  const std::string logged = redact_for_log(*cmd);
  if (verb == "PASS" || verb == "ACCT") {
    FUZZ_CHECK(logged == verb + " ****");
  } else {
    FUZZ_CHECK(logged == wire);
  }
  return 0;
}
