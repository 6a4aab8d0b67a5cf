// Certificate, key, CA and CRL files checked on their own: the TLS settings outside `tls:`
// (the gateway's `agents.tls`, the agent's `agent.tls`, issue 17), loaded by `--check` and
// at start with the messages `tls.certificates` gets, before any context uses them.
#pragma once

#include <openssl/ssl.h>

#include <string>
#include <vector>

#include "ftpsgate/agent_config.h"
#include "ftpsgate/config.h"

namespace ftpsgate::tls {

// Loads a PEM certificate (leaf, then its chain) and its PEM private key into `ctx` and
// checks that they belong together; false with "FILE: why".
bool use_certificate_files(SSL_CTX* ctx, const std::string& cert, const std::string& key, std::string& error);

// Each problem as "LINE:COL: message" (the position of the value concerned), as
// session::build_runtime reports certificate errors. Keys must not be encrypted.
void check_agents_tls(const AgentsConfig& agents, std::vector<std::string>& errors);
void check_agent_tls(const AgentSection& agent, std::vector<std::string>& errors);

}  // namespace ftpsgate::tls
