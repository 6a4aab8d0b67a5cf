// TEMPORARY (branch h-config only; deleted when the agent process of docs/agent-design.md
// step 6 is merged): lets `ftpsgate agent` link before agent::run_agent_process exists.
#include <iostream>

#include "agent/agent_process.h"

namespace ftpsgate::agent {

int run_agent_process(const AgentConfig&) {
  std::cerr << "ftpsgate agent: not built yet\n";
  return 1;
}

}  // namespace ftpsgate::agent
