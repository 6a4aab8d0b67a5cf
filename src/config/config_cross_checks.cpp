// The config loader: rules across sections, checked once every section is read.
#include "config/loader.h"

namespace ftpsgate::config::detail {

void Loader::check_backend_references() {
  std::vector<bool> used(config_.backends.size(), false);
  for (std::size_t i = 0; i < config_.listeners.size(); ++i) {
    if (!listener_sites_[i].backend_ok) continue;
    const std::string& name = config_.listeners[i].backend;
    const BackendConfig* backend = config_.find_backend(name);
    if (backend != nullptr) {
      used[static_cast<std::size_t>(backend - config_.backends.data())] = true;
    } else if (backend_names_complete_) {
      diag_.error(listener_sites_[i].backend, "unknown backend '" + name + "'");
    }
  }
  for (std::size_t i = 0; i < config_.listeners.size(); ++i) {
    for (const auto& name : config_.listeners[i].host_backends) {
      if (const BackendConfig* backend = config_.find_backend(name)) {
        used[static_cast<std::size_t>(backend - config_.backends.data())] = true;
      } else if (backend_names_complete_) {
        diag_.error(listener_sites_[i].host_backends, "host_backends: unknown backend '" + name + "'");
      }
    }
  }
  for (std::size_t i = 0; i < config_.backends.size(); ++i) {
    if (!used[i] && !config_.backends[i].name.empty()) {
      diag_.warning(backend_marks_[i], "backend '" + config_.backends[i].name + "' is not used by any listener");
    }
  }
}

void Loader::check_inspection_references() {
  const auto& scanners = config_.inspection.scanners;
  std::vector<bool> used(scanners.size(), false);
  // A class is picked by the client's address, not by its listener, and a session may end
  // up on its listener's backend, a HOST backend or a backend_logins route: every backend
  // may carry an inspected upload.
  std::vector<std::string> active;
  for (const auto& backend : config_.backends) {
    if (backend.data_mode == BackendDataMode::kActive) active.push_back("'" + backend.name + "'");
  }
  std::string active_names;
  for (const auto& name : active) active_names += (active_names.empty() ? "" : ", ") + name;
  for (const auto& site : inspection_sites_) {
    if (const ScannerConfig* scanner = config_.inspection.find_scanner(site.scanner_name)) {
      used[static_cast<std::size_t>(scanner - scanners.data())] = true;
    } else if (scanner_names_complete_) {
      diag_.error(site.scanner, "unknown scanner '" + site.scanner_name + "'");
    }
    // An inspected upload is spooled, then sent on a data connection the gateway opens to
    // the backend's passive port once the verdict is in.
    if (site.uploads && !active.empty()) {
      diag_.error(site.scanner, "inspection needs the backend's data_mode: passive (" +
                                    std::string(active.size() == 1 ? "backend " : "backends ") + active_names +
                                    (active.size() == 1 ? " has" : " have") + " data_mode: active)");
    }
  }
  for (std::size_t i = 0; i < scanners.size(); ++i) {
    if (!used[i] && !scanners[i].name.empty()) {
      diag_.warning(scanner_marks_[i], "scanner '" + scanners[i].name + "' is not used by any class or rule");
    }
  }
}

void Loader::check_agent_references() {
  const AgentsConfig* agents = config_.agents ? &*config_.agents : nullptr;
  std::vector<bool> used(agents != nullptr ? agents->peers.size() : 0, false);
  for (std::size_t b = 0; b < config_.backends.size(); ++b) {
    const BackendConfig& backend = config_.backends[b];
    const ServerConfig* through = nullptr;  // the backend's first agent server
    for (const auto& server : backend.servers) {
      if (server.agent.empty()) continue;
      if (through == nullptr) through = &server;
      if (agents == nullptr) {
        diag_.error(mark_at(server.position), "server '" + server.to_string() + "' needs an 'agents' section");
      } else if (const AgentPeerConfig* peer = agents->find(server.agent)) {
        used[static_cast<std::size_t>(peer - agents->peers.data())] = true;
      } else if (peer_names_complete_) {
        diag_.error(mark_at(server.position), "unknown agent '" + server.agent + "' (agents.peers)");
      }
    }
    if (through == nullptr || b >= backend_mode_sites_.size()) continue;
    const BackendModeSite& modes = backend_mode_sites_[b];
    const std::string who = "backend '" + backend.name + "': ";
    const std::string agent = "agent '" + through->agent + "'";
    // The backend's PORT connection would have to come from the inside network into the
    // DMZ, which the agent's one-way links exist to avoid.
    if (backend.data_mode == BackendDataMode::kActive && modes.data_mode) {
      diag_.error(*modes.data_mode, who + "data_mode: active cannot work through " + agent +
                                        " (the backend would have to connect into the DMZ); use data_mode: passive");
    }
    if (backend.tls != BackendTls::kOff && modes.tls) {
      const std::string mode = backend.tls == BackendTls::kExplicit ? "explicit" : "implicit";
      diag_.error(*modes.tls, who + "tls: " + mode + " is not supported through " + agent +
                                  " (the agent link is TLS already); use tls: off");
    }
  }
  for (std::size_t i = 0; i < used.size() && i < peer_marks_.size(); ++i) {
    if (!used[i] && !agents->peers[i].name.empty()) {
      diag_.warning(peer_marks_[i], "agent '" + agents->peers[i].name + "' is not used by any backend");
    }
  }
}

void Loader::check_agents_socket_clashes() {
  if (!config_.agents || !agents_address_ok_) return;
  const HostPort& address = config_.agents->address;
  const std::string what = "agents address " + address.to_string();
  for (std::size_t i = 0; i < config_.listeners.size(); ++i) {
    const ListenerConfig& listener = config_.listeners[i];
    if (listener_sites_[i].address_ok && addresses_clash(address, listener.address)) {
      diag_.error(agents_address_mark_,
                  what + " clashes with listener '" + listener.name + "' (" + listener.address.to_string() + ")");
    }
  }
  if (metrics_ok_ && !config_.metrics.address.empty() && addresses_clash(address, metrics_address_)) {
    diag_.error(agents_address_mark_, what + " clashes with the metrics address " + metrics_address_.to_string());
  }
  const PassiveConfig& passive = config_.passive;
  if (passive_ports_ok_ && address.port >= passive.port_min && address.port <= passive.port_max) {
    diag_.error(agents_address_mark_, what + " is inside the passive port range " + std::to_string(passive.port_min) +
                                          "-" + std::to_string(passive.port_max));
  }
}

void Loader::check_socket_clashes() {
  const auto& listeners = config_.listeners;
  for (std::size_t i = 0; i < listeners.size(); ++i) {
    const ListenerSite& site = listener_sites_[i];
    if (!site.address_ok) continue;
    for (std::size_t j = 0; j < i; ++j) {
      if (listener_sites_[j].address_ok && addresses_clash(listeners[i].address, listeners[j].address)) {
        diag_.error(site.address, "address " + listeners[i].address.to_string() + " clashes with listener '" +
                                      listeners[j].name + "' (" + listeners[j].address.to_string() + ")");
      }
    }
    if (metrics_ok_ && !config_.metrics.address.empty() && addresses_clash(listeners[i].address, metrics_address_)) {
      diag_.error(metrics_mark_, "metrics address " + metrics_address_.to_string() + " clashes with listener '" +
                                     listeners[i].name + "'");
    }
  }
  if (!passive_ports_ok_) return;
  // Passive data sockets are opened on the control connection's local address, which
  // may be any listener's (or every address for a wildcard listener); the range must
  // therefore stay clear of every port the gateway listens on.
  const PassiveConfig& passive = config_.passive;
  const std::string range = std::to_string(passive.port_min) + "-" + std::to_string(passive.port_max);
  auto in_range = [&](uint16_t port) { return port >= passive.port_min && port <= passive.port_max; };
  for (std::size_t i = 0; i < listeners.size(); ++i) {
    if (!listener_sites_[i].address_ok || !in_range(listeners[i].address.port)) continue;
    diag_.error(passive_ports_mark_ ? *passive_ports_mark_ : listener_sites_[i].address,
                "passive port range " + range + " overlaps listener '" + listeners[i].name + "' (" +
                    listeners[i].address.to_string() + ")");
  }
  if (metrics_ok_ && !config_.metrics.address.empty() && in_range(metrics_address_.port)) {
    diag_.error(passive_ports_mark_ ? *passive_ports_mark_ : metrics_mark_,
                "passive port range " + range + " overlaps the metrics address " + metrics_address_.to_string());
  }
}

bool Loader::shares_data_address(const std::string& a, const std::string& b) {
  const bool v6a = a.find(':') != std::string::npos;
  const bool v6b = b.find(':') != std::string::npos;
  return a == b || (v6a == v6b && (is_wildcard(a) || is_wildcard(b)));
}

void Loader::check_shared_port() {
  const PassiveConfig& passive = config_.passive;
  if (!passive.shared_port || !shared_port_mark_) return;
  const YAML::Mark at = *shared_port_mark_;
  const uint32_t count = static_cast<uint32_t>(passive.port_max) - passive.port_min + 1;
  if (passive_ports_ok_ && count > 64) {
    diag_.warning(at, "passive.shared_port listens on every port of passive.ports (" + std::to_string(count) +
                          " ports here, on every listener address); one port or a small range is enough");
  }
  // The shared ports of one address take PROXY headers or not: its listeners must agree.
  const auto& listeners = config_.listeners;
  for (std::size_t i = 0; i < listeners.size(); ++i) {
    for (std::size_t j = i + 1; j < listeners.size(); ++j) {
      if (shares_data_address(listeners[i].address.host, listeners[j].address.host) &&
          listeners[i].proxy_protocol != listeners[j].proxy_protocol) {
        diag_.error(
            at, "passive.shared_port: listeners '" + listeners[i].name + "' and '" + listeners[j].name +
                    "' share the address " +
                    (is_wildcard(listeners[i].address.host) ? listeners[i].address.host : listeners[j].address.host) +
                    " but not proxy_protocol, so its shared data port cannot tell whether to expect a "
                    "PROXY header");
      }
    }
  }
  bool reuse_optional = config_.tls.session_reuse_required != SessionReuse::kRequired;
  for (const auto& cls : config_.classes) {
    reuse_optional |= cls.session_reuse_required.value_or(SessionReuse::kRequired) != SessionReuse::kRequired;
  }
  if (reuse_optional) {
    diag_.warning(at,
                  "passive.shared_port matches protected data connections by the TLS session they resume: "
                  "session_reuse_required: false (or audit) cannot apply there, a data connection that does not resume "
                  "is refused");
  }
}

void Loader::check_client_verification() {
  const TlsConfig& tls = config_.tls;
  for (const auto& site : verify_sites_) {
    if (site.value != VerifyClient::kOn) continue;
    if (tls.client_ca.empty() && tls.client_ca_dir.empty()) {
      diag_.error(site.mark, "verify_client: on needs tls.client_ca or tls.client_ca_dir");
    }
    if (!tls.cert_request) {
      diag_.error(site.mark,
                  "verify_client: on needs tls.cert_request: true (otherwise no "
                  "client certificate is ever requested)");
    }
  }
}

}  // namespace ftpsgate::config::detail
