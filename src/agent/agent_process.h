// The inside-out agent's process (`ftpsgate agent`, issue 17): dials out to the gateways'
// `agents` listeners, keeps idle links ready and pipes each CONNECT to an allowlisted target.
#pragma once

#include <string>

#include "ftpsgate/agent_config.h"

namespace ftpsgate::agent {

// Runs until SIGTERM/SIGINT (drain, then 0) on its own event loop; SIGHUP reloads from
// `config.source`. Returns the process exit code (SPEC §1: 0 clean, 1 runtime failure).
int run_agent_process(const AgentConfig& config);

}  // namespace ftpsgate::agent
