// The inside-out agent's process (`ftpsgate agent`, issue 17): dials out to the gateways'
// `agents` listeners, keeps idle links ready and pipes each CONNECT to an allowlisted target.
#pragma once

#include <string>

#include "ftpsgate/agent_config.h"

namespace ftpsgate::agent {

// Runs until SIGTERM/SIGINT (stop dialing, close idle links, let pipes finish within
// agent.drain_timeout, then 0) on its own event loop. SIGHUP only logs that a reload is not
// supported yet. The caller has loaded and validated `config` (config/ loader, `ftpsgate
// agent --config`); this opens the log, loads the TLS files (exit 1 when they do not
// load), binds metrics.address, then drops to `user`. Returns the process exit code
// (SPEC §1: 0 clean, 1 runtime failure).
int run_agent_process(const AgentConfig& config);

}  // namespace ftpsgate::agent
