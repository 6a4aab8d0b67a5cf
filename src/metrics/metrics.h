// Prometheus metrics of SPEC §4, declared once; the exposer serves them on metrics.address.
#pragma once

#include <mutex>
#include <set>

#include <memory>
#include <string>
#include <string_view>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace ftpsgate::metrics {

class Metrics {
 public:
  Metrics();

  prometheus::Gauge& sessions_active(const std::string& listener);
  prometheus::Counter& sessions_total(const std::string& listener, const std::string& cls);
  prometheus::Counter& tls_handshakes(std::string_view channel, std::string_view version, std::string_view result);
  prometheus::Counter& policy_denials(std::string_view reason);
  // Rules (issue 15): `mode` is enforce or monitor; verbs outside the rules' vocabulary
  // are labelled "other" by the caller.
  // metrics.user_labels: at most kMaxUserLabels users get their own label; later ones
  // count under user="other", so a flood of names cannot grow the registry.
  static constexpr std::size_t kMaxUserLabels = 1000;
  prometheus::Counter& user_transfer_bytes(const std::string& user, std::string_view direction);
  prometheus::Counter& class_transfer_bytes(std::string_view cls, std::string_view direction);
  prometheus::Counter& bandwidth_throttled(std::string_view cls, std::string_view direction);
  prometheus::Counter& command_denials(std::string_view rule, std::string_view verb, std::string_view mode);
  // session_reuse_required: audit — protected data connections that did not resume.
  prometheus::Counter& data_unresumed(std::string_view class_name);
  prometheus::Counter& data_connections(std::string_view direction, std::string_view protection);
  prometheus::Counter& transfer_bytes(std::string_view direction);
  prometheus::Gauge& backend_up(const std::string& backend, const std::string& server);
  prometheus::Counter& backend_connect_failures(const std::string& backend, const std::string& server);
  void observe_backend_connect(double seconds);
  prometheus::Counter& config_reloads(std::string_view result);
  // Gateway-side logins (issue 14): result success | failure | unknown | error | busy.
  prometheus::Counter& auth_attempts(std::string_view provider, std::string_view result);
  void observe_auth(std::string_view provider, double seconds);
  prometheus::Gauge& certificate_expiry(const std::string& certificate);
  // Inspection (issue 16): verdict clean | infected | error | skipped.
  prometheus::Counter& inspections(std::string_view engine, std::string_view verdict);
  void observe_scan(std::string_view engine, double seconds);
  prometheus::Gauge& scanner_up(const std::string& scanner);
  prometheus::Gauge& spool_bytes();
  // Inside-out agents (issue 17). `agent` is always a configured peer name, never text
  // from a certificate. state: idle | in_use. handshake result: success | failure |
  // timeout | unknown_agent | source_not_allowed | too_many_links | over_limit. request
  // result: ok | refused | failed | timeout | not_connected | busy | cancelled.
  prometheus::Gauge& agent_connections(const std::string& agent, std::string_view state);
  prometheus::Gauge& agent_up(const std::string& agent);
  prometheus::Counter& agent_handshakes(std::string_view result);
  prometheus::Counter& agent_requests(const std::string& agent, std::string_view purpose, std::string_view result);
  void observe_agent_dial(double seconds);
  // Every series of a configured agent, at 0 (like backend_up), and every handshake result.
  void declare_agent(const std::string& agent);
  void declare_agent_handshakes();

  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Gauge>& sessions_active_;
  prometheus::Family<prometheus::Counter>& sessions_total_;
  prometheus::Family<prometheus::Counter>& tls_handshakes_;
  prometheus::Family<prometheus::Counter>& policy_denials_;
  prometheus::Family<prometheus::Counter>& command_denials_;
  prometheus::Family<prometheus::Counter>& class_transfer_bytes_;
  prometheus::Family<prometheus::Counter>& user_transfer_bytes_;
  std::mutex user_labels_mutex_;
  std::set<std::string> user_labels_;
  prometheus::Family<prometheus::Counter>& bandwidth_throttled_;
  prometheus::Family<prometheus::Counter>& data_unresumed_;
  prometheus::Family<prometheus::Counter>& data_connections_;
  prometheus::Family<prometheus::Counter>& transfer_bytes_;
  prometheus::Family<prometheus::Gauge>& backend_up_;
  prometheus::Family<prometheus::Counter>& backend_connect_failures_;
  prometheus::Family<prometheus::Histogram>& backend_connect_seconds_;
  prometheus::Family<prometheus::Counter>& config_reloads_;
  prometheus::Family<prometheus::Counter>& auth_attempts_;
  prometheus::Family<prometheus::Histogram>& auth_seconds_;
  prometheus::Family<prometheus::Gauge>& certificate_expiry_;
  prometheus::Family<prometheus::Counter>& inspections_;
  prometheus::Family<prometheus::Histogram>& scan_seconds_;
  prometheus::Family<prometheus::Gauge>& scanner_up_;
  prometheus::Family<prometheus::Gauge>& spool_bytes_;
  prometheus::Family<prometheus::Gauge>& agent_connections_;
  prometheus::Family<prometheus::Gauge>& agent_up_;
  prometheus::Family<prometheus::Counter>& agent_handshakes_;
  prometheus::Family<prometheus::Counter>& agent_requests_;
  prometheus::Family<prometheus::Histogram>& agent_dial_seconds_;
};

}  // namespace ftpsgate::metrics
