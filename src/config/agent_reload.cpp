#include "config/agent_reload.h"

namespace ftpsgate::config {

namespace {

bool same_gateways(const AgentSection& a, const AgentSection& b) {
  if (a.gateways.size() != b.gateways.size()) return false;
  for (std::size_t i = 0; i < a.gateways.size(); ++i) {
    const auto& x = a.gateways[i];
    const auto& y = b.gateways[i];
    if (x.address.to_string() != y.address.to_string() || x.server_name != y.server_name) return false;
  }
  return true;
}

bool same_logging(const LoggingConfig& a, const LoggingConfig& b) {
  return a.format == b.format && a.level == b.level && a.file == b.file && a.syslog == b.syslog &&
         a.syslog_facility == b.syslog_facility && a.syslog_socket == b.syslog_socket;
}

}  // namespace

std::optional<std::string> agent_reload_conflict(const AgentConfig& running, const AgentConfig& fresh) {
  if (!same_gateways(running.agent, fresh.agent)) return "agent.gateways changed";
  if (running.agent.pool.backoff.initial != fresh.agent.pool.backoff.initial ||
      running.agent.pool.backoff.max != fresh.agent.pool.backoff.max) {
    return "agent.pool.backoff changed";
  }
  if (running.metrics.address != fresh.metrics.address) return "metrics.address changed";
  if (!same_logging(running.logging, fresh.logging)) return "logging changed";
  if (running.user != fresh.user) return "user changed";
  return std::nullopt;
}

void apply_agent_reload(AgentSection& live, const AgentSection& fresh) {
  live.tls_ca = fresh.tls_ca;
  live.tls_cert = fresh.tls_cert;
  live.tls_key = fresh.tls_key;
  live.tls_position = fresh.tls_position;
  live.tls_ca_position = fresh.tls_ca_position;
  live.pool.idle = fresh.pool.idle;
  live.pool.max_links = fresh.pool.max_links;
  live.pool.max_dialing = fresh.pool.max_dialing;
  live.pool.connect_timeout = fresh.pool.connect_timeout;
  live.pool.keepalive_timeout = fresh.pool.keepalive_timeout;
  live.targets = fresh.targets;
  live.target_texts = fresh.target_texts;
  live.connect_timeout = fresh.connect_timeout;
  live.drain_timeout = fresh.drain_timeout;
}

}  // namespace ftpsgate::config
