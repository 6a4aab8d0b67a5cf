// What SIGHUP may change in a running agent (docs/agent-design.md 2.5). Pure: the agent
// process loads and checks the new file, asks here, then swaps.
#pragma once

#include <optional>
#include <string>

#include "ftpsgate/agent_config.h"

namespace ftpsgate::config {

// Why `fresh` needs a restart of an agent running `running` (then nothing is applied), or
// nullopt. Restart-only: the gateways (a keeper per address), pool.backoff, metrics,
// logging and user (bound, opened or dropped at start).
std::optional<std::string> agent_reload_conflict(const AgentConfig& running, const AgentConfig& fresh);

// Copies what a reload changes into the live section: targets, tls files, pool sizes and
// timeouts, connect_timeout, drain_timeout. The gateways stay (keepers point into them).
void apply_agent_reload(AgentSection& live, const AgentSection& fresh);

}  // namespace ftpsgate::config
