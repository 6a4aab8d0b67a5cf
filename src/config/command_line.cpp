#include "config/command_line.h"

namespace ftpsgate::config {

CommandLine parse_command_line(int argc, const char* const* argv) {
  CommandLine options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--config" || arg == "-c") {
      if (i + 1 >= argc) {
        options.error = "--config needs a file name";
        break;
      }
      options.config_path = argv[++i];
    } else if (arg.rfind("--config=", 0) == 0) {
      options.config_path = arg.substr(9);
    } else if (arg == "--check") {
      options.check = true;
    } else if (arg == "--version") {
      options.version = true;
    } else if (arg == "--help" || arg == "-h") {
      options.help = true;
    } else {
      options.error = "unknown argument '" + arg + "'";
      break;
    }
  }
  return options;
}

}  // namespace ftpsgate::config
