// The options `ftpsgate` and `ftpsgate agent` share (SPEC §1): --config FILE (-c FILE,
// --config=FILE), --check, --version, --help (-h). Pure; each command prints its own usage.
#pragma once

#include <string>

namespace ftpsgate::config {

struct CommandLine {
  std::string config_path;  // "" = not given
  bool check = false;
  bool version = false;
  bool help = false;
  std::string error;  // why the arguments were refused; empty when all were understood
};

// argv[1] to argv[argc - 1] (argv[0] names the program or the subcommand).
CommandLine parse_command_line(int argc, const char* const* argv);

}  // namespace ftpsgate::config
