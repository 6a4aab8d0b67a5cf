// The config loader's internals, shared by its per-section files (load_*.cpp): the
// Loader that reads one document into a Config, and the helpers the sections share.
#pragma once

#include <sys/un.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <iterator>
#include <limits>
#include <map>

#include "config/config_loader.h"
#include "config/value_parsers.h"
#include "config/yaml_reader.h"
#include "tunnel/agent_protocol.h"

namespace ftpsgate::config::detail {

// Shorter lines could not carry a path plus the command (vsftpd uses 4096).
inline constexpr std::size_t kMinMaxLine = 512;
// Bounded so a typo cannot make every session buffer huge.
inline constexpr std::size_t kMaxMaxLine = std::size_t{1} << 20;
// RFC 8446 §4.6.1: a ticket lifetime must not exceed seven days.
inline constexpr Duration kMaxSessionTimeout = std::chrono::hours(24 * 7);
// A 220 line, not a document.
inline constexpr std::size_t kMaxBannerLength = 256;
// inspection (issue 16): an ICAP preview is a sample, not the file; connections per
// worker and scanner; a unix socket path fits sockaddr_un.sun_path with its NUL.
inline constexpr std::size_t kMaxIcapPreview = std::size_t{1} << 20;
inline constexpr uint32_t kMaxScannerConnections = 1024;
inline constexpr std::size_t kMaxUnixSocketPath = sizeof(sockaddr_un::sun_path) - 1;
// agents (issue 17): links and waiting dials per agent, handshakes in all; bounded so a typo
// cannot ask for more file descriptors than a process gets.
inline constexpr uint32_t kMaxAgentLinks = 65536;
inline constexpr uint32_t kMaxAgentHandshakes = 4096;
inline constexpr uint32_t kMaxAgentDialing = 1024;
// The floor of the agent's pool.keepalive_timeout (docs/agent-design.md 2.4): shorter, idle
// links would be dropped between the gateway's PINGs.
inline constexpr Duration kMinAgentKeepaliveTimeout = std::chrono::seconds(2);

// above_max_scan_size and on_error: deny (false) or allow (true).
inline const MapReader::Choices<bool> kDenyAllowChoices = {{"deny", false}, {"allow", true}};

inline const MapReader::Choices<VerifyClient> kVerifyClientChoices = {
    {"off", VerifyClient::kOff}, {"optional", VerifyClient::kOptional}, {"on", VerifyClient::kOn}};

inline constexpr std::string_view kCertificateFieldChoices =
    "field must be one of: dn, cn, subject.<ATTRIBUTE> (e.g. subject.UID), san_email, san_dns, san_uri";

inline constexpr std::string_view kTlsRequiredChoices =
    "tls_required must be one of: on, off, ctrl, data, !data, ctrl+!data, auth, auth+data, "
    "auth+!data";

// backends[].servers entries reached through an inside-out agent: "agent:NAME/host:port".
inline constexpr std::string_view kAgentServerPrefix = "agent:";

inline std::string indexed(std::string_view list, std::size_t index) {
  return std::string(list) + "[" + std::to_string(index) + "]";
}

inline std::string line_of(const YAML::Mark& mark) { return std::to_string(mark.line + 1); }

// A recorded position as a mark again, for rules checked once every section is read.
inline YAML::Mark mark_at(const SourcePosition& position) {
  YAML::Mark mark;
  mark.line = position.line - 1;
  mark.column = position.column - 1;
  return mark;
}
inline SourcePosition position_of(const YAML::Mark& mark) { return {mark.line + 1, mark.column + 1}; }

// A host an agent link names (a CONNECT target, a gateway to dial, a TLS server name): a
// canonical IPv4 address, an IPv6 address (without brackets) or a DNS name; false with `error`.
inline bool is_connect_host(const std::string& host, std::string& error) {
  return tunnel::parse_host(is_ipv6_literal(host) ? "[" + host + "]" : host, error).has_value();
}

// Names end up in metric labels and log fields, so they stay plain.
inline bool is_plain_name(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return false;
    }
  }
  return true;
}

// Absent, "key:" or "key: []": a list with nothing in it (rather than a wrong type).
inline bool is_empty_list(const Field* field) {
  return field == nullptr || field->value.IsNull() || (field->value.IsSequence() && field->value.size() == 0);
}

// A section mapping such as "tls:"; absent or empty means all defaults.
inline MapReader section(MapReader& parent, std::string_view key, std::initializer_list<std::string_view> known_keys) {
  const Field* field = parent.get(key);
  const std::string path = parent.path().empty() ? std::string(key) : parent.path() + "." + std::string(key);
  if (field == nullptr) return MapReader(YAML::Node(), parent.mark(), path, known_keys, parent.diag());
  return MapReader(field->value, field->value_mark(), path, known_keys, parent.diag());
}

// health_check: {interval, timeout} of a backend or a scanner.
inline void read_health_check(MapReader& parent, HealthCheckConfig& out) {
  MapReader health = section(parent, "health_check", {"interval", "timeout"});
  health.read_duration("interval", out.interval);
  health.read_duration("timeout", out.timeout);
}

// A list of plain strings (e.g. user or group names); bad entries are reported and left out.
inline std::vector<std::string> read_string_list(MapReader& map, std::string_view key, Diagnostics& diag) {
  std::vector<std::string> out;
  const Field* field = map.get(key);
  if (field == nullptr) return out;
  for (const auto& item : list_items(*field, key, diag)) {
    if (auto text = scalar_text(item, item.Mark(), "a '" + std::string(key) + "' entry", diag)) out.push_back(*text);
  }
  return out;
}

// TLS is needed before USER for these, so the user cannot choose the policy.
inline bool requires_tls_before_user(TlsRequired value) {
  return value == TlsRequired::kOn || value == TlsRequired::kAuth || value == TlsRequired::kAuthData ||
         value == TlsRequired::kAuthNotData;
}

// Two sockets clash when they share a port and either listens everywhere or both
// listen on the same address.
inline bool addresses_clash(const HostPort& a, const HostPort& b) {
  return a.port == b.port && (is_wildcard_host(a.host) || is_wildcard_host(b.host) || same_ip(a.host, b.host));
}

class Loader {
 public:
  explicit Loader(const std::string& file_name) : diag_(file_name) {
    config_.source = file_name;
    agent_config_.source = file_name;
  }

  LoadResult load(const std::string& text);
  // The agent's own file (issue 17): keys agent|metrics|logging|user.
  AgentLoadResult load_agent(const std::string& text);

 private:
  // Positions of values that cross-field rules point at. A default-constructed Mark is
  // never used: each flag says whether the value was present and valid.
  struct ListenerSite {
    YAML::Mark address;
    bool address_ok = false;
    YAML::Mark backend;
    bool backend_ok = false;
    YAML::Mark host_backends;
  };
  struct VerifySite {
    VerifyClient value;
    YAML::Mark mark;
  };

  // Parses the single document of `text` and hands it to `read`.
  void read_document(const std::string& text, void (Loader::*read)(const YAML::Node&));
  LoadResult finish();
  // Errors and warnings taken; the value moved into the result when there are no errors.
  template <typename Result, typename Value>
  Result finish(Value& value) {
    Result result;
    result.errors = diag_.take_errors();
    result.warnings = diag_.take_warnings();
    if (result.errors.empty()) result.config = std::move(value);
    return result;
  }

  const Field* read_required(MapReader& map, std::string_view key, std::string& out);
  // A required file name: present and not empty.
  const Field* read_required_path(MapReader& map, std::string_view key, std::string& out);

  // A required, plain, unique name; `seen` maps names to their first position.
  void read_name(MapReader& map, std::string_view kind, std::map<std::string, YAML::Mark>& seen, std::string& out);

  void read_root(const YAML::Node& root);

  void read_listeners(MapReader& top);

  // A list of CIDRs (or bare addresses); invalid entries are reported and left out.
  std::vector<std::string> read_cidrs(MapReader& map, const char* key);

  // An address the gateway binds: IP literals only, so clashes can be detected here.
  bool read_bind_address(const std::string& text, const YAML::Mark& at, std::string_view what, HostPort& out);

  void check_banner(const std::string& banner, const YAML::Mark& at);

  void read_tls(MapReader& top);

  void read_certificate(const YAML::Node& node, const std::string& path);

  void read_protocols(const Field& field);

  void read_classes(MapReader& top);
  void read_bandwidth(MapReader& cls, BandwidthConfig& out);
  // `inspection:` of a class or a rule.
  void read_inspection_policy(MapReader& parent, inspection::InspectionPolicy& out);

  bool read_tls_required(MapReader& map, TlsRequired& out);
  // true/false (yes/no) or audit.
  const Field* read_session_reuse(MapReader& map, SessionReuse& out);

  void read_users(const Field& field, const std::string& path, std::map<std::string, UserOverride>& users);

  void check_masquerade(const std::string& address, const YAML::Mark& at);

  void read_backends(MapReader& top);

  void read_servers(MapReader& map, BackendConfig& backend);
  // "agent:NAME/host:port" (issue 17); nullopt after reporting why not.
  std::optional<ServerConfig> read_agent_server(const std::string& text, const YAML::Mark& at);

  void read_passive(MapReader& top);

  void read_active(MapReader& top);

  void read_data(MapReader& top);

  void read_limits(MapReader& top);

  // `gateway`: the keys only the gateway has (metrics.user_labels; logging's transfer
  // records) are known too; the agent's file refuses them as unknown.
  void read_metrics(MapReader& top, bool gateway = true);

  void read_logging(MapReader& top, bool gateway = true);

  // agents (issue 17): the listener inside-out agents dial out to, and its peers.
  void read_agents(MapReader& top);
  void read_agents_tls(MapReader& agents_map, AgentsConfig& agents);
  // (field, equals) of the peers read so far -> the peer's name and position.
  using PeerMappings = std::map<std::pair<std::string, std::string>, std::pair<std::string, YAML::Mark>>;
  void read_agent_peer(const YAML::Node& node, std::size_t index, std::map<std::string, YAML::Mark>& names,
                       PeerMappings& mappings, AgentsConfig& agents);
  void check_agent_references();
  void check_agents_socket_clashes();

  // The agent's file (issue 17): its root and its `agent:` section.
  void read_agent_root(const YAML::Node& root);
  void read_agent_section(MapReader& top);
  void read_agent_gateways(MapReader& agent);
  void read_agent_tls(MapReader& agent);
  void read_agent_pool(MapReader& agent);
  void read_agent_targets(MapReader& agent);

  // auth (issue 14): providers, backend logins, and the chains listeners and classes name.
  void read_auth(MapReader& top);
  void read_auth_provider(const YAML::Node& node, std::size_t index, std::map<std::string, YAML::Mark>& names);
  void read_ldap_provider(MapReader& map, AuthProviderConfig& provider);
  void read_certificate_rules(MapReader& map, AuthProviderConfig& provider);
  std::shared_ptr<const UsersTable> load_users_file(const std::string& path, const YAML::Mark& at);
  void read_backend_logins(MapReader& auth);
  void read_auth_chain(MapReader& map, std::vector<std::string>& out);
  // A secret file's content (trailing newline dropped); nullopt after reporting why not.
  std::optional<std::string> read_secret_file(const std::string& path, const YAML::Mark& at, std::string_view what);
  void check_auth_references();

  // rules (issue 15): verbs, paths and uploads per class, user or group.
  void read_rules(MapReader& top);
  std::vector<std::string> read_rule_verbs(MapReader& map, std::string_view key);
  std::vector<rules::Glob> read_globs(MapReader& map, std::string_view key);

  // inspection (issue 16): the spool and the scanners classes name.
  void read_inspection(MapReader& top);
  void read_scanner(const YAML::Node& node, std::size_t index, std::map<std::string, YAML::Mark>& names);
  void read_clamd(MapReader& scanner_map, ScannerConfig& scanner);
  void read_icap(MapReader& scanner_map, ScannerConfig& scanner);
  void check_inspection_references();

  void check_backend_references();

  void check_socket_clashes();

  static bool is_wildcard(const std::string& host) { return host == "0.0.0.0" || host == "::"; }
  // The shared ports of a wildcard listener also serve the other addresses of its family.
  static bool shares_data_address(const std::string& a, const std::string& b);

  void check_shared_port();

  void check_client_verification();

  Config config_;
  Diagnostics diag_;
  std::vector<ListenerSite> listener_sites_;  // parallel to config_.listeners
  std::vector<YAML::Mark> backend_marks_;     // parallel to config_.backends
  // A backend's data_mode and tls values, where written (agent servers allow only the defaults).
  struct BackendModeSite {
    std::optional<YAML::Mark> data_mode;
    std::optional<YAML::Mark> tls;
  };
  std::vector<BackendModeSite> backend_mode_sites_;  // parallel to config_.backends
  bool backend_names_complete_ = true;        // false: "unknown backend" could be a false alarm
  std::vector<VerifySite> verify_sites_;
  std::optional<YAML::Mark> passive_ports_mark_;
  bool passive_ports_ok_ = true;
  std::optional<YAML::Mark> shared_port_mark_;
  HostPort metrics_address_;
  YAML::Mark metrics_mark_;
  bool metrics_ok_ = false;
  struct AuthChainSite {
    std::vector<std::string> chain;
    std::vector<YAML::Mark> marks;
  };
  std::vector<AuthChainSite> auth_chain_sites_;
  std::vector<std::pair<std::string, YAML::Mark>> auth_backend_refs_;  // backends named by auth
  std::optional<YAML::Mark> certificate_provider_mark_;
  // A class's or rule's inspection, for the checks made once the scanners are read.
  struct InspectionSite {
    std::string scanner_name;
    bool uploads = false;
    YAML::Mark scanner;
  };
  std::vector<InspectionSite> inspection_sites_;
  std::vector<YAML::Mark> scanner_marks_;  // parallel to config_.inspection.scanners
  bool scanner_names_complete_ = true;     // false: "unknown scanner" could be a false alarm
  // agents (issue 17).
  std::vector<YAML::Mark> peer_marks_;  // parallel to config_.agents->peers
  bool peer_names_complete_ = true;     // false: "unknown agent" could be a false alarm
  YAML::Mark agents_address_mark_;
  bool agents_address_ok_ = false;
  // The agent's file.
  AgentConfig agent_config_;
};

}  // namespace ftpsgate::config::detail
