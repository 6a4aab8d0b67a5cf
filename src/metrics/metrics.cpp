#include "metrics/metrics.h"


namespace ftpsgate::metrics {

namespace {
std::string s(std::string_view v) { return std::string(v); }
}  // namespace

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      sessions_active_(prometheus::BuildGauge().Name("ftpsgate_sessions_active")
                           .Help("Control sessions currently open").Register(*registry_)),
      sessions_total_(prometheus::BuildCounter().Name("ftpsgate_sessions_total")
                          .Help("Control sessions accepted").Register(*registry_)),
      tls_handshakes_(prometheus::BuildCounter().Name("ftpsgate_tls_handshakes_total")
                          .Help("TLS handshakes by channel, version and result").Register(*registry_)),
      policy_denials_(prometheus::BuildCounter().Name("ftpsgate_policy_denials_total")
                          .Help("Requests refused by policy, by reason").Register(*registry_)),
      command_denials_(prometheus::BuildCounter().Name("ftpsgate_command_denials_total")
                           .Help("Commands refused by the command, path and upload rules (mode=monitor: "
                                 "would have been refused), by rule and verb")
                           .Register(*registry_)),
      class_transfer_bytes_(prometheus::BuildCounter().Name("ftpsgate_class_transfer_bytes_total")
                                .Help("Bytes relayed on data connections, by class and direction")
                                .Register(*registry_)),
      user_transfer_bytes_(prometheus::BuildCounter().Name("ftpsgate_user_transfer_bytes_total")
                               .Help("Bytes relayed on data connections, by user and direction (only with "
                                     "metrics.user_labels; at most 1000 users, the rest as \"other\")")
                               .Register(*registry_)),
      bandwidth_throttled_(prometheus::BuildCounter().Name("ftpsgate_bandwidth_throttled_seconds_total")
                               .Help("Time transfers waited for bandwidth tokens, by class and direction")
                               .Register(*registry_)),
      data_unresumed_(prometheus::BuildCounter().Name("ftpsgate_data_unresumed_total")
                          .Help("Protected data connections accepted without resuming the control "
                                "connection's TLS session (session_reuse_required: audit), by class")
                          .Register(*registry_)),
      data_connections_(prometheus::BuildCounter().Name("ftpsgate_data_connections_total")
                            .Help("Data connections relayed").Register(*registry_)),
      transfer_bytes_(prometheus::BuildCounter().Name("ftpsgate_transfer_bytes_total")
                          .Help("Data bytes relayed").Register(*registry_)),
      backend_up_(prometheus::BuildGauge().Name("ftpsgate_backend_up")
                      .Help("1 when the backend server is healthy").Register(*registry_)),
      backend_connect_failures_(prometheus::BuildCounter().Name("ftpsgate_backend_connect_failures_total")
                                    .Help("Failed connections to backend servers").Register(*registry_)),
      backend_connect_seconds_(prometheus::BuildHistogram().Name("ftpsgate_backend_connect_seconds")
                                   .Help("Time to connect to a backend server").Register(*registry_)),
      config_reloads_(prometheus::BuildCounter().Name("ftpsgate_config_reloads_total")
                          .Help("Configuration reloads by result").Register(*registry_)),
      auth_attempts_(prometheus::BuildCounter().Name("ftpsgate_auth_attempts_total")
                         .Help("Gateway-side logins by deciding provider and result").Register(*registry_)),
      auth_seconds_(prometheus::BuildHistogram().Name("ftpsgate_auth_duration_seconds")
                        .Help("Time to decide a gateway-side login (queue, hashing, directory)")
                        .Register(*registry_)),
      certificate_expiry_(prometheus::BuildGauge().Name("ftpsgate_certificate_expiry_timestamp_seconds")
                              .Help("notAfter of each served certificate").Register(*registry_)),
      inspections_(prometheus::BuildCounter().Name("ftpsgate_inspections_total")
                       .Help("Uploads inspected, by scanner engine and verdict (clean, infected, error, skipped)")
                       .Register(*registry_)),
      scan_seconds_(prometheus::BuildHistogram().Name("ftpsgate_scan_duration_seconds")
                        .Help("Time from a spooled upload's end to its scanner's verdict, by engine")
                        .Register(*registry_)),
      scanner_up_(prometheus::BuildGauge().Name("ftpsgate_scanner_up")
                      .Help("1 when the scanner answered its last health check").Register(*registry_)),
      spool_bytes_(prometheus::BuildGauge().Name("ftpsgate_spool_bytes")
                       .Help("Bytes of uploads held in the inspection spool (memory and files)")
                       .Register(*registry_)),
      agent_connections_(prometheus::BuildGauge().Name("ftpsgate_agent_connections")
                             .Help("Links of each inside-out agent, by state (idle, in_use)").Register(*registry_)),
      agent_up_(prometheus::BuildGauge().Name("ftpsgate_agent_up")
                    .Help("1 while the agent has at least one link").Register(*registry_)),
      agent_handshakes_(prometheus::BuildCounter().Name("ftpsgate_agent_handshakes_total")
                            .Help("Connections on the agents listener, by outcome").Register(*registry_)),
      agent_requests_(prometheus::BuildCounter().Name("ftpsgate_agent_requests_total")
                          .Help("Backend connections requested through an agent, by agent, purpose and result")
                          .Register(*registry_)),
      agent_dial_seconds_(prometheus::BuildHistogram().Name("ftpsgate_agent_dial_seconds")
                              .Help("Time from a request through an agent to its OK, waiting included")
                              .Register(*registry_)) {}

prometheus::Gauge& Metrics::sessions_active(const std::string& listener) {
  return sessions_active_.Add({{"listener", listener}});
}
prometheus::Counter& Metrics::sessions_total(const std::string& listener, const std::string& cls) {
  return sessions_total_.Add({{"listener", listener}, {"class", cls}});
}
prometheus::Counter& Metrics::tls_handshakes(std::string_view channel, std::string_view version,
                                             std::string_view result) {
  return tls_handshakes_.Add({{"channel", s(channel)}, {"version", s(version)}, {"result", s(result)}});
}
prometheus::Counter& Metrics::policy_denials(std::string_view reason) {
  return policy_denials_.Add({{"reason", s(reason)}});
}
prometheus::Counter& Metrics::command_denials(std::string_view rule, std::string_view verb, std::string_view mode) {
  return command_denials_.Add({{"rule", s(rule)}, {"verb", s(verb)}, {"mode", s(mode)}});
}
prometheus::Counter& Metrics::class_transfer_bytes(std::string_view cls, std::string_view direction) {
  return class_transfer_bytes_.Add({{"class", s(cls)}, {"direction", s(direction)}});
}
prometheus::Counter& Metrics::user_transfer_bytes(const std::string& user, std::string_view direction) {
  std::string label = user;
  {
    std::lock_guard lock(user_labels_mutex_);
    if (!user_labels_.count(user)) {
      if (user_labels_.size() < kMaxUserLabels) {
        user_labels_.insert(user);
      } else {
        label = "other";
      }
    }
  }
  return user_transfer_bytes_.Add({{"user", label}, {"direction", s(direction)}});
}
prometheus::Counter& Metrics::bandwidth_throttled(std::string_view cls, std::string_view direction) {
  return bandwidth_throttled_.Add({{"class", s(cls)}, {"direction", s(direction)}});
}
prometheus::Counter& Metrics::data_unresumed(std::string_view class_name) {
  return data_unresumed_.Add({{"class", s(class_name)}});
}
prometheus::Counter& Metrics::data_connections(std::string_view direction, std::string_view protection) {
  return data_connections_.Add({{"direction", s(direction)}, {"protection", s(protection)}});
}
prometheus::Counter& Metrics::transfer_bytes(std::string_view direction) {
  return transfer_bytes_.Add({{"direction", s(direction)}});
}
prometheus::Gauge& Metrics::backend_up(const std::string& backend, const std::string& server) {
  return backend_up_.Add({{"backend", backend}, {"server", server}});
}
prometheus::Counter& Metrics::backend_connect_failures(const std::string& backend, const std::string& server) {
  return backend_connect_failures_.Add({{"backend", backend}, {"server", server}});
}
void Metrics::observe_backend_connect(double seconds) {
  static const prometheus::Histogram::BucketBoundaries kBuckets{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5};
  backend_connect_seconds_.Add({}, kBuckets).Observe(seconds);
}
prometheus::Counter& Metrics::config_reloads(std::string_view result) {
  return config_reloads_.Add({{"result", s(result)}});
}
prometheus::Counter& Metrics::auth_attempts(std::string_view provider, std::string_view result) {
  return auth_attempts_.Add({{"provider", s(provider)}, {"result", s(result)}});
}
void Metrics::observe_auth(std::string_view provider, double seconds) {
  static const prometheus::Histogram::BucketBoundaries kBuckets{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  auth_seconds_.Add({{"provider", s(provider)}}, kBuckets).Observe(seconds);
}
prometheus::Gauge& Metrics::certificate_expiry(const std::string& certificate) {
  return certificate_expiry_.Add({{"certificate", certificate}});
}
prometheus::Counter& Metrics::inspections(std::string_view engine, std::string_view verdict) {
  return inspections_.Add({{"engine", s(engine)}, {"verdict", s(verdict)}});
}
void Metrics::observe_scan(std::string_view engine, double seconds) {
  static const prometheus::Histogram::BucketBoundaries kBuckets{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                                1,     2.5,  5,     10,   30,  60};
  scan_seconds_.Add({{"engine", s(engine)}}, kBuckets).Observe(seconds);
}
prometheus::Gauge& Metrics::scanner_up(const std::string& scanner) { return scanner_up_.Add({{"scanner", scanner}}); }
prometheus::Gauge& Metrics::spool_bytes() { return spool_bytes_.Add({}); }

prometheus::Gauge& Metrics::agent_connections(const std::string& agent, std::string_view state) {
  return agent_connections_.Add({{"agent", agent}, {"state", s(state)}});
}
prometheus::Gauge& Metrics::agent_up(const std::string& agent) { return agent_up_.Add({{"agent", agent}}); }
prometheus::Counter& Metrics::agent_handshakes(std::string_view result) {
  return agent_handshakes_.Add({{"result", s(result)}});
}
prometheus::Counter& Metrics::agent_requests(const std::string& agent, std::string_view purpose,
                                             std::string_view result) {
  return agent_requests_.Add({{"agent", agent}, {"purpose", s(purpose)}, {"result", s(result)}});
}
void Metrics::observe_agent_dial(double seconds) {
  static const prometheus::Histogram::BucketBoundaries kBuckets{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5};
  agent_dial_seconds_.Add({}, kBuckets).Observe(seconds);
}
void Metrics::declare_agent(const std::string& agent) {
  agent_connections(agent, "idle");
  agent_connections(agent, "in_use");
  agent_up(agent);
  for (std::string_view purpose : {"control", "data", "health"}) {
    for (std::string_view result : {"ok", "refused", "failed", "timeout", "not_connected", "busy", "cancelled"}) {
      agent_requests(agent, purpose, result);
    }
  }
}
void Metrics::declare_agent_handshakes() {
  for (std::string_view result :
       {"success", "failure", "timeout", "unknown_agent", "source_not_allowed", "too_many_links", "over_limit"}) {
    agent_handshakes(result);
  }
}

}  // namespace ftpsgate::metrics
