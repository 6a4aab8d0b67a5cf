// The config loader: agents (issue 17): the listener inside-out agents dial out to, its TLS
// and the peers, each named by its verified client certificate (docs/agent-design.md 2.1).
#include <filesystem>

#include "config/loader.h"
#include "identity/certificate_rules.h"

namespace ftpsgate::config::detail {

const Field* Loader::read_required_path(MapReader& map, std::string_view key, std::string& out) {
  const Field* field = read_required(map, key, out);
  if (field != nullptr && out.empty()) {
    diag_.error(field->value_mark(), "'" + std::string(key) + "' must not be empty");
    return nullptr;
  }
  return field;
}

void Loader::read_agents(MapReader& top) {
  const Field* field = top.get("agents");
  if (field == nullptr) return;
  // Present, even when broken: agent servers then get no "needs an 'agents' section" on top.
  config_.agents.emplace();
  AgentsConfig& agents = *config_.agents;
  MapReader map(field->value, field->value_mark(), "agents",
                {"address", "from", "tls", "handshake_timeout", "max_handshakes", "keepalive_interval",
                 "keepalive_timeout", "peers"},
                diag_, MapReader::Empty::kError);
  if (!map.is_mapping()) {
    peer_names_complete_ = false;
    return;
  }
  agents.position = position_of(map.mark());
  std::string address;
  if (const Field* at = read_required(map, "address", address)) {
    agents_address_mark_ = at->value_mark();
    agents_address_ok_ = read_bind_address(address, agents_address_mark_, "agents", agents.address);
  }
  agents.from = read_cidrs(map, "from");
  read_agents_tls(map, agents);
  map.read_duration("handshake_timeout", agents.handshake_timeout);
  map.read_int<uint32_t>("max_handshakes", 1, kMaxAgentHandshakes, agents.max_handshakes);
  map.read_duration("keepalive_interval", agents.keepalive_interval);
  map.read_duration("keepalive_timeout", agents.keepalive_timeout);

  const Field* peers = map.get("peers");
  if (is_empty_list(peers)) {
    diag_.error(peers != nullptr ? peers->value_mark() : map.mark(), "agents needs at least one peer ('peers')");
    peer_names_complete_ = false;  // every agent server would be "unknown" on top
    return;
  }
  const auto items = list_items(*peers, "peers", diag_);
  if (items.empty()) peer_names_complete_ = false;  // not a list
  std::map<std::string, YAML::Mark> names;
  PeerMappings mappings;
  for (std::size_t i = 0; i < items.size(); ++i) read_agent_peer(items[i], i, names, mappings, agents);
}

void Loader::read_agents_tls(MapReader& agents_map, AgentsConfig& agents) {
  if (agents_map.require("tls") == nullptr) return;
  MapReader map = section(agents_map, "tls", {"cert", "key", "client_ca", "crl"});
  agents.certificate.position = position_of(map.mark());
  read_required_path(map, "cert", agents.certificate.cert);
  // The key-matches-certificate check (made with the files, by --check and at start) points here.
  if (const Field* key = read_required_path(map, "key", agents.certificate.key)) {
    agents.certificate.position = position_of(key->value_mark());
  }
  agents.client_ca_position = position_of(map.mark());
  if (const Field* ca = read_required_path(map, "client_ca", agents.client_ca)) {
    agents.client_ca_position = position_of(ca->value_mark());
    // SECURITY: with the FTPS clients' CA, any user's certificate that a peer's rule
    // happens to match would open an agent link: a tunnel into the inside network.
    const std::string& clients_ca = config_.tls.client_ca;
    std::error_code ec;
    if (!clients_ca.empty() &&
        (agents.client_ca == clients_ca || std::filesystem::equivalent(agents.client_ca, clients_ca, ec))) {
      diag_.error(ca->value_mark(),
                  "agents.tls.client_ca must not be the FTPS clients' CA (a user's certificate would be an agent)");
    }
  }
  if (const Field* crl = map.read("crl", agents.crl)) agents.crl_position = position_of(crl->value_mark());
}

void Loader::read_agent_peer(const YAML::Node& node, std::size_t index, std::map<std::string, YAML::Mark>& names,
                             PeerMappings& mappings, AgentsConfig& agents) {
  MapReader map(node, node.Mark(), "agents." + indexed("peers", index),
                {"name", "certificate", "from", "max_idle", "max_links", "max_waiting"}, diag_,
                MapReader::Empty::kError);
  if (!map.is_mapping()) {
    peer_names_complete_ = false;
    return;
  }
  AgentPeerConfig peer;
  peer.position = position_of(map.mark());
  const std::size_t errors_before = diag_.error_count();
  read_name(map, "agent", names, peer.name);
  if (peer.name.empty() || diag_.error_count() != errors_before) peer_names_complete_ = false;

  if (const Field* certificate = map.require("certificate")) {
    MapReader rule(certificate->value, certificate->value_mark(), map.path() + ".certificate", {"field", "equals"},
                   diag_, MapReader::Empty::kError);
    if (rule.is_mapping()) {
      identity::CertificateRule& out = peer.certificate;
      const Field* field = read_required(rule, "field", out.field);
      const bool field_ok = field != nullptr && identity::is_certificate_field(out.field);
      if (field != nullptr && !field_ok) diag_.error(field->value_mark(), std::string(kCertificateFieldChoices));
      // SECURITY: an empty `equals` would match every certificate the agents' CA signed.
      const Field* equals = read_required(rule, "equals", out.equals);
      const bool equals_ok = equals != nullptr && !out.equals.empty();
      if (equals != nullptr && !equals_ok) {
        diag_.error(equals->value_mark(), "'equals' must not be empty (it names exactly one agent's certificate)");
      }
      // Exactly the peer's name: no {value}/{match} templates (names are plain, so none apply).
      out.user = peer.name;
      if (field_ok && equals_ok) {
        auto [it, inserted] =
            mappings.emplace(std::make_pair(out.field, out.equals), std::make_pair(peer.name, map.mark()));
        if (!inserted) {
          diag_.error(certificate->value_mark(), "duplicate agent certificate mapping (peer '" + it->second.first +
                                                     "' on line " + line_of(it->second.second) + ")");
        }
      }
    }
  }
  peer.from = read_cidrs(map, "from");
  const Field* max_idle = map.read_int<uint32_t>("max_idle", 1, kMaxAgentLinks, peer.max_idle);
  map.read_int<uint32_t>("max_links", 1, kMaxAgentLinks, peer.max_links);
  map.read_int<uint32_t>("max_waiting", 0, kMaxAgentLinks, peer.max_waiting);
  if (peer.max_idle > peer.max_links) {
    diag_.error(max_idle != nullptr ? max_idle->value_mark() : map.mark(),
                "'max_idle' (" + std::to_string(peer.max_idle) + ") must not be larger than 'max_links' (" +
                    std::to_string(peer.max_links) + ")");
  }
  peer_marks_.push_back(map.mark());
  agents.peers.push_back(std::move(peer));
}

}  // namespace ftpsgate::config::detail
