// What every part of the agent shares: the loop, the resolver, the link TLS context, the
// allowlist (in `config`), the log and the metrics. Built by run_agent_process (or a test)
// and outliving every keeper, link and pipe. A reload (SIGHUP) changes `config`'s reloadable
// fields in place and points `tls` at a new object: read them at each use, never keep them.
#pragma once

#include "agent/agent_metrics.h"
#include "agent/link_client_tls.h"
#include "log/rate_limited_log.h"
#include "ftpsgate/agent_config.h"
#include "log/logger.h"

struct event_base;
struct evdns_base;

namespace ftpsgate::agent {

struct AgentContext {
  event_base* base;
  evdns_base* dns;  // nullptr: DNS names cannot be resolved (IP literals still work)
  const AgentSection& config;
  const LinkClientTls* tls;                // SSL objects made from it keep its SSL_CTX alive
  log::Logger& logger;
  AgentMetrics& metrics;
  log::RateLimitedLog& refusals;
};

}  // namespace ftpsgate::agent
