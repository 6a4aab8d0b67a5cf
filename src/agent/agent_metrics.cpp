#include "agent/agent_metrics.h"

namespace ftpsgate::agent {

namespace {
std::string s(std::string_view v) { return std::string(v); }
constexpr std::string_view kLinkStates[] = {"dialing", "idle", "piped"};
constexpr std::string_view kDialResults[] = {"success",           "connect_failed", "connect_timeout",
                                             "resolve_failed",    "tls_failed",     "refused"};

template <typename T>
void remove_series(prometheus::Family<T>& family, const prometheus::Labels& labels) {
  if (family.Has(labels)) family.Remove(&family.Add(labels));
}
}  // namespace

AgentMetrics::AgentMetrics(const std::vector<std::string>& gateways)
    : registry_(std::make_shared<prometheus::Registry>()),
      links_(prometheus::BuildGauge()
                 .Name("ftpsgate_agent_links")
                 .Help("Links to a gateway, by state (dialing, idle, piped)")
                 .Register(*registry_)),
      gateway_up_(prometheus::BuildGauge()
                      .Name("ftpsgate_agent_gateway_up")
                      .Help("1 while the gateway address has at least one established link")
                      .Register(*registry_)),
      dials_(prometheus::BuildCounter()
                 .Name("ftpsgate_agent_dials_total")
                 .Help("Link dials to a gateway, by result")
                 .Register(*registry_)),
      requests_(prometheus::BuildCounter()
                    .Name("ftpsgate_agent_connect_requests_total")
                    .Help("CONNECT requests from gateways, by purpose and result")
                    .Register(*registry_)),
      pipe_bytes_(prometheus::BuildCounter()
                      .Name("ftpsgate_agent_pipe_bytes_total")
                      .Help("Bytes piped between gateways and targets, by direction")
                      .Register(*registry_)),
      config_reloads_(prometheus::BuildCounter()
                          .Name("ftpsgate_agent_config_reloads_total")
                          .Help("SIGHUP reloads of the agent's file, by result")
                          .Register(*registry_)) {
  for (const auto& gateway : gateways) add_gateway(gateway);
  for (std::string_view purpose : {"control", "data", "health"}) {
    for (std::string_view result :
         {"ok", "not_allowed", "connect_failed", "connect_timeout", "resolve_failed", "bad_request"}) {
      requests(purpose, result);
    }
  }
  pipe_bytes("to_target");
  pipe_bytes("to_gateway");
  config_reloads("success");
  config_reloads("failure");
}

void AgentMetrics::add_gateway(const std::string& gateway) {
  for (std::string_view state : kLinkStates) links(gateway, state);
  gateway_up(gateway);
  for (std::string_view result : kDialResults) dials(gateway, result);
}

void AgentMetrics::forget_gateway(const std::string& gateway) {
  for (std::string_view state : kLinkStates) remove_series(links_, {{"gateway", gateway}, {"state", s(state)}});
  remove_series(gateway_up_, {{"gateway", gateway}});
  for (std::string_view result : kDialResults) remove_series(dials_, {{"gateway", gateway}, {"result", s(result)}});
}

prometheus::Gauge& AgentMetrics::links(const std::string& gateway, std::string_view state) {
  return links_.Add({{"gateway", gateway}, {"state", s(state)}});
}

prometheus::Gauge& AgentMetrics::gateway_up(const std::string& gateway) {
  return gateway_up_.Add({{"gateway", gateway}});
}

prometheus::Counter& AgentMetrics::dials(const std::string& gateway, std::string_view result) {
  return dials_.Add({{"gateway", gateway}, {"result", s(result)}});
}

prometheus::Counter& AgentMetrics::requests(std::string_view purpose, std::string_view result) {
  return requests_.Add({{"purpose", s(purpose)}, {"result", s(result)}});
}

prometheus::Counter& AgentMetrics::config_reloads(std::string_view result) {
  return config_reloads_.Add({{"result", s(result)}});
}

prometheus::Counter& AgentMetrics::pipe_bytes(std::string_view direction) {
  return pipe_bytes_.Add({{"direction", s(direction)}});
}

}  // namespace ftpsgate::agent
