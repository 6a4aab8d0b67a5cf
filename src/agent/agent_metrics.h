// The agent's Prometheus metrics (docs/agent-design.md 5), on a registry of its own (the
// agent shares no process with the gateway). Labels come only from the configuration, the
// answers of its gateway names (at most kMaxGatewayAnswers each, series removed when an
// answer goes) and fixed vocabularies, never from a peer.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace ftpsgate::agent {

class AgentMetrics {
 public:
  // Every gateway's series exist from the start, at 0.
  explicit AgentMetrics(const std::vector<std::string>& gateways = {});

  // A gateway address's series, at 0: at start, or when a name's answer gets a keeper.
  void add_gateway(const std::string& gateway);
  // An answer that went away: its series go with it (answers change, the series must not pile up).
  void forget_gateway(const std::string& gateway);

  // state: dialing | idle | piped.
  prometheus::Gauge& links(const std::string& gateway, std::string_view state);
  prometheus::Gauge& gateway_up(const std::string& gateway);
  // result: success | connect_failed | connect_timeout | resolve_failed | tls_failed | refused.
  prometheus::Counter& dials(const std::string& gateway, std::string_view result);
  // result: ok | not_allowed | connect_failed | connect_timeout | resolve_failed | bad_request.
  prometheus::Counter& requests(std::string_view purpose, std::string_view result);
  // direction: to_target | to_gateway.
  prometheus::Counter& pipe_bytes(std::string_view direction);
  // result: success | failure (SIGHUP).
  prometheus::Counter& config_reloads(std::string_view result);

  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Gauge>& links_;
  prometheus::Family<prometheus::Gauge>& gateway_up_;
  prometheus::Family<prometheus::Counter>& dials_;
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Counter>& pipe_bytes_;
  prometheus::Family<prometheus::Counter>& config_reloads_;
};

}  // namespace ftpsgate::agent
