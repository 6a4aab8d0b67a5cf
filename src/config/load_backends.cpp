// The config loader: backends: pools, servers, balance, FTPS and data mode.
#include "config/loader.h"

namespace ftpsgate::config::detail {

void Loader::read_backends(MapReader& top) {
  const Field* field = top.get("backends");
  if (field == nullptr) return;
  const auto items = list_items(*field, "backends", diag_);
  std::map<std::string, YAML::Mark> names;
  for (std::size_t i = 0; i < items.size(); ++i) {
    MapReader map(items[i], items[i].Mark(), indexed("backends", i),
                  {"name", "servers", "balance", "connect_timeout", "health_check", "data_mode", "tls", "tls_ca",
                   "tls_verify", "hosts"},
                  diag_, MapReader::Empty::kError);
    if (!map.is_mapping()) {
      backend_names_complete_ = false;
      continue;
    }
    BackendConfig backend;
    backend.position = {items[i].Mark().line + 1, items[i].Mark().column + 1};
    const std::size_t errors_before = diag_.error_count();
    read_name(map, "backend", names, backend.name);
    if (backend.name.empty() || diag_.error_count() != errors_before) {
      backend_names_complete_ = false;
    }
    read_servers(map, backend);
    // RFC 7151 HOST names routed to this backend.
    if (const Field* hosts = map.get("hosts")) {
      for (const auto& item : list_items(*hosts, "hosts", diag_)) {
        auto text = scalar_text(item, item.Mark(), "a 'hosts' entry", diag_);
        if (!text) continue;
        if (text->empty()) {
          diag_.error(item.Mark(), "'hosts' entries must not be empty");
          continue;
        }
        std::string lower = *text;
        for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        backend.hosts.push_back(lower);
      }
    }
    map.read_choice("balance", backend.balance,
                    {{"round_robin", BalancePolicy::kRoundRobin},
                     {"least_conn", BalancePolicy::kLeastConn},
                     {"source_hash", BalancePolicy::kSourceHash},
                     {"per_user", BalancePolicy::kPerUser}});
    map.read_duration("connect_timeout", backend.connect_timeout);
    read_health_check(map, backend.health_check);
    BackendModeSite modes;
    if (const Field* data_mode =
            map.read_choice("data_mode", backend.data_mode,
                            {{"passive", BackendDataMode::kPassive}, {"active", BackendDataMode::kActive}})) {
      modes.data_mode = data_mode->value_mark();
    }
    if (const Field* tls = map.read_choice(
            "tls", backend.tls,
            {{"off", BackendTls::kOff}, {"explicit", BackendTls::kExplicit}, {"implicit", BackendTls::kImplicit}})) {
      modes.tls = tls->value_mark();
    }
    backend_mode_sites_.push_back(modes);
    map.read("tls_ca", backend.tls_ca);
    map.read("tls_verify", backend.tls_verify);
    backend_marks_.push_back(map.mark());
    config_.backends.push_back(std::move(backend));
  }
}

void Loader::read_servers(MapReader& map, BackendConfig& backend) {
  const Field* field = map.get("servers");
  const std::string who = backend.name.empty() ? "backend" : "backend '" + backend.name + "'";
  if (field == nullptr) {
    diag_.error(map.mark(), who + " needs at least one server ('servers')");
    return;
  }
  if (is_empty_list(field)) {
    diag_.error(field->value_mark(), who + " needs at least one server ('servers')");
    return;
  }
  const auto items = list_items(*field, "servers", diag_);
  for (const auto& item : items) {
    auto text = scalar_text(item, item.Mark(), "a server address", diag_);
    if (!text) continue;
    const SourcePosition position{item.Mark().line + 1, item.Mark().column + 1};
    if (text->rfind(kAgentServerPrefix, 0) == 0) {
      if (auto server = read_agent_server(*text, item.Mark())) {
        server->position = position;
        backend.servers.push_back(std::move(*server));
      }
      continue;
    }
    auto address = parse_host_port(*text);
    if (!address) {
      diag_.error(item.Mark(), "invalid server address '" + *text + "' (use host:port or [IPv6]:port)");
      continue;
    }
    backend.servers.push_back(ServerConfig{std::move(*address), "", position});
  }
}

std::optional<ServerConfig> Loader::read_agent_server(const std::string& text, const YAML::Mark& at) {
  const std::string usage = "invalid agent server '" + text + "' (use agent:NAME/host:port)";
  const std::string_view rest = std::string_view(text).substr(kAgentServerPrefix.size());
  const auto slash = rest.find('/');
  if (slash == std::string_view::npos) {
    diag_.error(at, usage);
    return std::nullopt;
  }
  ServerConfig server;
  server.agent = std::string(rest.substr(0, slash));
  if (!is_plain_name(server.agent)) {
    diag_.error(at, usage + ": the agent name must be letters, digits, '-', '_' or '.'");
    return std::nullopt;
  }
  auto address = parse_host_port(rest.substr(slash + 1));
  if (!address) {
    diag_.error(at, usage);
    return std::nullopt;
  }
  // Only the agent resolves the host, and it reads it from a CONNECT line: it must be what
  // that line may carry (a canonical IPv4 address, an IPv6 address or a DNS name).
  std::string error;
  if (!is_connect_host(address->host, error)) {
    diag_.error(at, usage + ": " + error);
    return std::nullopt;
  }
  server.address = std::move(*address);
  return server;
}

}  // namespace ftpsgate::config::detail
