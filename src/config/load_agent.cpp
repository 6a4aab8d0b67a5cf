// The config loader's second root: the inside-out agent's own file (`ftpsgate agent
// --config FILE`, issue 17; docs/agent-design.md 2.3): agent, metrics, logging, user.
#include "config/loader.h"
#include "tunnel/target_allowlist.h"

namespace ftpsgate::config::detail {

void Loader::read_agent_root(const YAML::Node& root) {
  MapReader top(root, root.Mark(), "", {"agent", "metrics", "logging", "user"}, diag_);
  if (!top.is_mapping()) return;
  read_agent_section(top);
  // The shared readers fill config_; the agent's defaults go in first.
  config_.metrics = agent_config_.metrics;
  config_.logging = agent_config_.logging;
  read_metrics(top, /*gateway=*/false);
  read_logging(top, /*gateway=*/false);
  agent_config_.metrics = config_.metrics;
  agent_config_.logging = config_.logging;
  top.read("user", agent_config_.user);
}

void Loader::read_agent_section(MapReader& top) {
  if (top.require("agent") == nullptr) return;
  MapReader map = section(top, "agent", {"gateways", "tls", "pool", "targets", "connect_timeout", "drain_timeout"});
  if (!map.is_mapping()) return;
  read_agent_gateways(map);
  read_agent_tls(map);
  read_agent_pool(map);
  read_agent_targets(map);
  AgentSection& agent = agent_config_.agent;
  map.read_duration("connect_timeout", agent.connect_timeout);
  // 0 = close the pipes at once on SIGTERM.
  map.read_duration("drain_timeout", agent.drain_timeout, /*allow_zero=*/true);
}

void Loader::read_agent_gateways(MapReader& agent) {
  const Field* field = agent.get("gateways");
  if (is_empty_list(field)) {
    diag_.error(field != nullptr ? field->value_mark() : agent.mark(), "agent needs at least one gateway ('gateways')");
    return;
  }
  std::map<std::string, YAML::Mark> seen;
  const auto items = list_items(*field, "gateways", diag_);
  for (std::size_t i = 0; i < items.size(); ++i) {
    MapReader map(items[i], items[i].Mark(), "agent." + indexed("gateways", i), {"address", "server_name"}, diag_,
                  MapReader::Empty::kError);
    if (!map.is_mapping()) continue;
    AgentGatewayConfig gateway;
    gateway.position = position_of(map.mark());
    std::string text;
    if (const Field* address = read_required(map, "address", text)) {
      auto parsed = parse_host_port(text);
      std::string error;
      if (!parsed) {
        diag_.error(address->value_mark(), "invalid gateway address '" + text + "' (use host:port or [IPv6]:port)");
      } else if (!is_connect_host(parsed->host, error)) {
        diag_.error(address->value_mark(), "invalid gateway address '" + text + "': " + error);
      } else {
        gateway.address = std::move(*parsed);
        gateway.server_name = gateway.address.host;
        std::string key = gateway.address.to_string();
        for (auto& ch : key) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        auto [it, inserted] = seen.emplace(key, address->value_mark());
        if (!inserted) {
          diag_.error(address->value_mark(),
                      "duplicate gateway address '" + text + "' (first used on line " + line_of(it->second) + ")");
        }
      }
    }
    std::string error;
    if (const Field* name = map.read("server_name", gateway.server_name); name != nullptr) {
      if (!is_connect_host(gateway.server_name, error)) {
        diag_.error(name->value_mark(), "invalid server_name '" + gateway.server_name + "': " + error);
      }
    }
    agent_config_.agent.gateways.push_back(std::move(gateway));
  }
}

void Loader::read_agent_tls(MapReader& agent) {
  if (agent.require("tls") == nullptr) return;
  MapReader map = section(agent, "tls", {"ca", "cert", "key"});
  AgentSection& out = agent_config_.agent;
  out.tls_position = position_of(map.mark());
  out.tls_ca_position = out.tls_position;
  // SECURITY: the pinned CA is the only trust anchor (never the system store), so a
  // public CA's certificate for the gateway's name cannot collect the agent's links.
  if (const Field* ca = read_required_path(map, "ca", out.tls_ca)) out.tls_ca_position = position_of(ca->value_mark());
  read_required_path(map, "cert", out.tls_cert);
  if (const Field* key = read_required_path(map, "key", out.tls_key)) out.tls_position = position_of(key->value_mark());
}

void Loader::read_agent_pool(MapReader& agent) {
  MapReader map =
      section(agent, "pool", {"idle", "max_links", "max_dialing", "connect_timeout", "keepalive_timeout", "backoff"});
  AgentPoolConfig& pool = agent_config_.agent.pool;
  const Field* idle = map.read_int<uint32_t>("idle", 1, kMaxAgentLinks, pool.idle);
  const Field* max_links = map.read_int<uint32_t>("max_links", 1, kMaxAgentLinks, pool.max_links);
  if (pool.idle > pool.max_links) {
    const Field* at = idle != nullptr ? idle : max_links;
    diag_.error(at != nullptr ? at->value_mark() : map.mark(), "'pool.idle' (" + std::to_string(pool.idle) +
                                                                   ") must not be larger than 'pool.max_links' (" +
                                                                   std::to_string(pool.max_links) + ")");
  }
  map.read_int<uint32_t>("max_dialing", 1, kMaxAgentDialing, pool.max_dialing);
  map.read_duration("connect_timeout", pool.connect_timeout);
  Duration keepalive = pool.keepalive_timeout;
  if (const Field* field = map.read_duration("keepalive_timeout", keepalive)) {
    if (keepalive < kMinAgentKeepaliveTimeout) {
      diag_.error(field->value_mark(), "'pool.keepalive_timeout' must be at least 2s");
    } else {
      pool.keepalive_timeout = keepalive;
    }
  }
  MapReader backoff = section(map, "backoff", {"initial", "max"});
  const Field* initial = backoff.read_duration("initial", pool.backoff.initial);
  const Field* max = backoff.read_duration("max", pool.backoff.max);
  if (pool.backoff.initial > pool.backoff.max) {
    const Field* at = initial != nullptr ? initial : max;
    diag_.error(at != nullptr ? at->value_mark() : backoff.mark(),
                "'pool.backoff.initial' must not be longer than 'pool.backoff.max'");
  }
}

void Loader::read_agent_targets(MapReader& agent) {
  const Field* field = agent.get("targets");
  if (is_empty_list(field)) {
    diag_.error(field != nullptr ? field->value_mark() : agent.mark(),
                "agent needs at least one target ('targets'): the host:port it may connect to");
    return;
  }
  AgentSection& out = agent_config_.agent;
  for (const auto& item : list_items(*field, "targets", diag_)) {
    auto text = scalar_text(item, item.Mark(), "a target", diag_);
    if (!text) continue;
    std::string error;
    auto entry = tunnel::TargetEntry::parse(*text, error);
    if (!entry) {
      diag_.error(item.Mark(), error);
      continue;
    }
    out.targets.add(std::move(*entry));
    out.target_texts.push_back(*text);
  }
}

}  // namespace ftpsgate::config::detail
