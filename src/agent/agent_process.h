// The inside-out agent's process (`ftpsgate agent`, issue 17): dials out to the gateways'
// `agents` listeners, keeps idle links ready and pipes each CONNECT to an allowlisted target.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "ftpsgate/agent_config.h"

namespace ftpsgate::agent {

// The agent's file, loaded and its TLS files checked, at start (`ftpsgate agent`) and at each
// SIGHUP: `config` is set when `errors` (each "FILE:LINE:COL: message") is empty.
struct AgentFile {
  std::optional<AgentConfig> config;
  std::vector<std::string> errors;
  std::vector<std::string> warnings;  // "FILE:LINE:COL: message"
};
AgentFile load_agent_file(const std::string& source);

// Runs until SIGTERM/SIGINT (stop dialing, close idle links, let pipes finish within
// agent.drain_timeout, then 0) on its own event loop; SIGHUP reloads `config.source`
// (config/agent_reload.h). The caller has loaded `config` with load_agent_file; this opens
// the log, loads the TLS files (exit 1 when they do not load), binds metrics.address, then
// drops to `user`. Returns the process exit code (SPEC §1: 0 clean, 1 runtime failure).
int run_agent_process(const AgentConfig& config);

}  // namespace ftpsgate::agent
