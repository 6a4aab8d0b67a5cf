#include "agent/agent_main.h"

#include <event2/event.h>
#include <openssl/crypto.h>

#include <iostream>
#include <string>

#include "agent/agent_process.h"
#include "config/command_line.h"

namespace ftpsgate::agent {

namespace {

constexpr int kExitOk = 0;
constexpr int kExitConfig = 2;

// The shared options, plus this command's rule: --config is required to run or check.
config::CommandLine parse_options(int argc, char** argv) {
  config::CommandLine options = config::parse_command_line(argc, argv);
  if (options.error.empty() && options.config_path.empty() && !options.version && !options.help) {
    options.error = "--config FILE is required";
  }
  return options;
}

void print_usage(std::ostream& out) {
  out << "usage: ftpsgate agent --config FILE [--check]\n"
         "       ftpsgate agent --version | --help\n"
         "  --config FILE  the agent's configuration (example: config/agent.yaml)\n"
         "  --check        validate it, its certificates and keys, then exit\n"
         "  --version      print versions and exit\n";
}

}  // namespace

int run_agent(int argc, char** argv) {
  const config::CommandLine options = parse_options(argc, argv);
  if (!options.error.empty()) {
    std::cerr << "ftpsgate agent: " << options.error << "\n";
    print_usage(std::cerr);
    return kExitConfig;
  }
  if (options.help) {
    print_usage(std::cout);
    return kExitOk;
  }
  if (options.version) {
    std::cout << "ftpsgate agent " << FTPSGATE_VERSION << "\n"
              << OpenSSL_version(OPENSSL_VERSION) << "\n"
              << "libevent " << event_get_version() << "\n";
    return kExitOk;
  }

  const std::string& source = options.config_path;
  const AgentFile loaded = load_agent_file(source);
  for (const auto& e : loaded.errors) std::cerr << e << "\n";
  for (const auto& w : loaded.warnings) std::cerr << source << ": warning: " << w << "\n";
  if (!loaded.config) return kExitConfig;
  if (options.check) {
    std::cout << source << ": configuration OK\n";
    return kExitOk;
  }
  // Binding /metrics, then `user:`, signals and the links are the process's own.
  return run_agent_process(*loaded.config);
}

}  // namespace ftpsgate::agent
