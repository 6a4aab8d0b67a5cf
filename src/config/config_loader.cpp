#include "config/config_loader.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>

#include "config/value_parsers.h"
#include "config/yaml_reader.h"

namespace ftpsgate::config {

std::string ConfigError::format() const {
  if (line == 0) return file + ": " + message;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

namespace {

using detail::Diagnostics;
using detail::Field;
using detail::list_items;
using detail::MapReader;
using detail::scalar_text;

// Shorter lines could not carry a path plus the command (vsftpd uses 4096).
constexpr std::size_t kMinMaxLine = 512;
// Bounded so a typo cannot make every session buffer huge.
constexpr std::size_t kMaxMaxLine = std::size_t{1} << 20;
// RFC 8446 §4.6.1: a ticket lifetime must not exceed seven days.
constexpr Duration kMaxSessionTimeout = std::chrono::hours(24 * 7);
// A 220 line, not a document.
constexpr std::size_t kMaxBannerLength = 256;

const MapReader::Choices<VerifyClient> kVerifyClientChoices = {
    {"off", VerifyClient::kOff}, {"optional", VerifyClient::kOptional}, {"on", VerifyClient::kOn}};

constexpr std::string_view kTlsRequiredChoices =
    "tls_required must be one of: on, off, ctrl, data, !data, ctrl+!data, auth, auth+data, "
    "auth+!data";

std::string indexed(std::string_view list, std::size_t index) {
  return std::string(list) + "[" + std::to_string(index) + "]";
}

std::string line_of(const YAML::Mark& mark) { return std::to_string(mark.line + 1); }

// Names end up in metric labels and log fields, so they stay plain.
bool is_plain_name(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return false;
    }
  }
  return true;
}

// Absent, "key:" or "key: []": a list with nothing in it (rather than a wrong type).
bool is_empty_list(const Field* field) {
  return field == nullptr || field->value.IsNull() ||
         (field->value.IsSequence() && field->value.size() == 0);
}

// A section mapping such as "tls:"; absent or empty means all defaults.
MapReader section(MapReader& parent, std::string_view key,
                  std::initializer_list<std::string_view> known_keys) {
  const Field* field = parent.get(key);
  const std::string path =
      parent.path().empty() ? std::string(key) : parent.path() + "." + std::string(key);
  if (field == nullptr)
    return MapReader(YAML::Node(), parent.mark(), path, known_keys, parent.diag());
  return MapReader(field->value, field->value_mark(), path, known_keys, parent.diag());
}

// TLS is needed before USER for these, so the user cannot choose the policy.
bool requires_tls_before_user(TlsRequired value) {
  return value == TlsRequired::kOn || value == TlsRequired::kAuth ||
         value == TlsRequired::kAuthData || value == TlsRequired::kAuthNotData;
}

// Two sockets clash when they share a port and either listens everywhere or both
// listen on the same address.
bool addresses_clash(const HostPort& a, const HostPort& b) {
  return a.port == b.port &&
         (is_wildcard_host(a.host) || is_wildcard_host(b.host) || same_ip(a.host, b.host));
}

class Loader {
 public:
  explicit Loader(const std::string& file_name) : diag_(file_name) { config_.source = file_name; }

  LoadResult load(const std::string& text) {
    const auto document = detail::parse_single_document(text, diag_);
    if (!document) return finish();
    try {
      read_root(*document);
    } catch (const YAML::Exception& e) {
      // yaml-cpp throws on misuse only; report rather than crash on exotic input.
      diag_.error(e.mark, std::string("cannot read the configuration: ") + e.what());
    }
    return finish();
  }

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

  LoadResult finish() {
    LoadResult result;
    result.errors = diag_.take_errors();
    result.warnings = diag_.take_warnings();
    if (result.errors.empty()) result.config = std::move(config_);
    return result;
  }

  const Field* read_required(MapReader& map, std::string_view key, std::string& out) {
    return map.require(key) != nullptr ? map.read(key, out) : nullptr;
  }

  // A required, plain, unique name; `seen` maps names to their first position.
  void read_name(MapReader& map, std::string_view kind, std::map<std::string, YAML::Mark>& seen,
                 std::string& out) {
    const Field* field = read_required(map, "name", out);
    if (field == nullptr) return;
    if (!is_plain_name(out)) {
      diag_.error(field->value_mark(), std::string(kind) + " name '" + out +
                                           "' must be letters, digits, '-', '_' or '.'");
      return;
    }
    auto [it, inserted] = seen.emplace(out, field->value_mark());
    if (!inserted) {
      diag_.error(field->value_mark(), "duplicate " + std::string(kind) + " name '" + out +
                                           "' (first used on line " + line_of(it->second) + ")");
    }
  }

  void read_root(const YAML::Node& root) {
    MapReader top(root, root.Mark(), "",
                  {"listeners", "tls", "classes", "backends", "passive", "active", "data", "limits",
                   "metrics", "user", "logging", "workers"},
                  diag_);
    if (!top.is_mapping()) return;
    read_listeners(top);
    read_tls(top);
    read_classes(top);
    read_backends(top);
    read_passive(top);
    read_active(top);
    read_data(top);
    read_limits(top);
    read_metrics(top);
    top.read("user", config_.user);
    top.read_int<uint32_t>("workers", 0, 256, config_.workers);
    read_logging(top);
    check_backend_references();
    check_socket_clashes();
    check_client_verification();
    check_shared_port();
  }

  void read_listeners(MapReader& top) {
    const Field* field = top.get("listeners");
    if (is_empty_list(field)) {
      diag_.error(field != nullptr ? field->value_mark() : top.mark(),
                  "at least one listener is required ('listeners')");
      return;
    }
    const auto items = list_items(*field, "listeners", diag_);
    std::map<std::string, YAML::Mark> names;
    for (std::size_t i = 0; i < items.size(); ++i) {
      MapReader map(items[i], items[i].Mark(), indexed("listeners", i),
                    {"name", "address", "mode", "backend", "proxy_protocol", "proxy_protocol_from", "host_backends",
                     "banner"},
                    diag_,
                    MapReader::Empty::kError);
      if (!map.is_mapping()) continue;
      ListenerConfig listener;
      ListenerSite site;
      read_name(map, "listener", names, listener.name);
      std::string address_text;
      if (const Field* address = read_required(map, "address", address_text)) {
        site.address = address->value_mark();
        site.address_ok =
            read_bind_address(address_text, site.address, "listener", listener.address);
      }
      map.read_choice(
          "mode", listener.mode,
          {{"explicit", ListenerMode::kExplicit}, {"implicit", ListenerMode::kImplicit}});
      if (const Field* backend = read_required(map, "backend", listener.backend)) {
        site.backend = backend->value_mark();
        site.backend_ok = true;
      }
      const Field* proxy = map.read("proxy_protocol", listener.proxy_protocol);
      listener.proxy_protocol_from = read_cidrs(map, "proxy_protocol_from");
      if (listener.proxy_protocol && is_empty_list(map.get("proxy_protocol_from"))) {
        diag_.error(proxy != nullptr ? proxy->value_mark() : map.mark(),
                    "proxy_protocol: true needs proxy_protocol_from, the addresses (CIDRs) of the load balancers "
                    "allowed to send PROXY headers (a header from anyone else could claim any client address)");
      } else if (!listener.proxy_protocol && !listener.proxy_protocol_from.empty()) {
        diag_.warning(map.get("proxy_protocol_from")->value_mark(),
                      "proxy_protocol_from has no effect without proxy_protocol: true");
      }
      if (const Field* hosts = map.get("host_backends")) {
        site.host_backends = hosts->value_mark();
        for (const auto& item : list_items(*hosts, "host_backends", diag_)) {
          if (auto text = scalar_text(item, item.Mark(), "a 'host_backends' entry", diag_)) {
            listener.host_backends.push_back(*text);
          }
        }
      }
      if (const Field* banner = map.read("banner", listener.banner)) {
        check_banner(listener.banner, banner->value_mark());
      }
      config_.listeners.push_back(std::move(listener));
      listener_sites_.push_back(site);
    }
  }

  // A list of CIDRs (or bare addresses); invalid entries are reported and left out.
  std::vector<std::string> read_cidrs(MapReader& map, const char* key) {
    std::vector<std::string> out;
    const Field* field = map.get(key);
    if (field == nullptr) return out;
    const std::string what = std::string("a '") + key + "' entry";
    for (const auto& item : list_items(*field, key, diag_)) {
      auto text = scalar_text(item, item.Mark(), what, diag_);
      if (!text) continue;
      if (auto error = cidr_error(*text)) {
        diag_.error(item.Mark(), *error);
      } else {
        out.push_back(*text);
      }
    }
    return out;
  }

  // An address the gateway binds: IP literals only, so clashes can be detected here.
  bool read_bind_address(const std::string& text, const YAML::Mark& at, std::string_view what,
                         HostPort& out) {
    auto address = parse_host_port(text);
    if (!address) {
      diag_.error(at, "invalid address '" + text + "' (use host:port or [IPv6]:port)");
      return false;
    }
    if (!is_ip_literal(address->host)) {
      diag_.error(at, std::string(what) + " address must be an IP address, not a host name " +
                          "(e.g. 0.0.0.0:21 or [::]:21)");
      return false;
    }
    out = *address;
    return true;
  }

  void check_banner(const std::string& banner, const YAML::Mark& at) {
    // SECURITY: a CR/LF in the greeting would let the config forge extra reply lines.
    for (char c : banner) {
      if (std::iscntrl(static_cast<unsigned char>(c))) {
        diag_.error(at, "banner must be a single line without control characters");
        return;
      }
    }
    if (banner.size() > kMaxBannerLength) {
      diag_.error(at, "banner is longer than " + std::to_string(kMaxBannerLength) + " characters");
    }
  }

  void read_tls(MapReader& top) {
    MapReader map = section(top, "tls",
                            {"certificates", "passphrase_command", "protocols", "ciphers",
                             "ciphersuites", "groups", "client_ca", "client_ca_dir", "crl",
                             "verify_client", "cert_request", "session_reuse_required",
                             "session_timeout", "ticket_key_file", "client_renegotiation", "log"});
    TlsConfig& tls = config_.tls;
    if (const Field* field = map.get("certificates")) {
      const auto items = list_items(*field, "certificates", diag_);
      for (std::size_t i = 0; i < items.size(); ++i) {
        read_certificate(items[i], indexed("tls.certificates", i));
      }
    }
    map.read("passphrase_command", tls.passphrase_command);
    if (const Field* field = map.get("protocols")) read_protocols(*field);
    map.read("ciphers", tls.ciphers);
    map.read("ciphersuites", tls.ciphersuites);
    map.read("groups", tls.groups);
    map.read("client_ca", tls.client_ca);
    map.read("client_ca_dir", tls.client_ca_dir);
    map.read("crl", tls.crl);
    if (const Field* field =
            map.read_choice("verify_client", tls.verify_client, kVerifyClientChoices)) {
      verify_sites_.push_back({tls.verify_client, field->value_mark()});
    }
    map.read("cert_request", tls.cert_request);
    map.read("session_reuse_required", tls.session_reuse_required);
    Duration timeout = tls.session_timeout;
    if (const Field* field = map.read_duration("session_timeout", timeout)) {
      if (timeout > kMaxSessionTimeout) {
        diag_.error(field->value_mark(),
                    "'session_timeout' must not exceed 7 days (168h), the TLS 1.3 ticket limit");
      } else {
        tls.session_timeout = timeout;
      }
    }
    if (const Field* field = map.read("ticket_key_file", tls.ticket_key_file)) {
      tls.ticket_key_file_position = {field->value_mark().line + 1, field->value_mark().column + 1};
    }
    map.read("client_renegotiation", tls.client_renegotiation);
    map.read("log", tls.log);
  }

  void read_certificate(const YAML::Node& node, const std::string& path) {
    MapReader map(node, node.Mark(), path, {"cert", "key", "pkcs12"}, diag_,
                  MapReader::Empty::kError);
    if (!map.is_mapping()) return;
    CertificateConfig certificate;
    certificate.position = {node.Mark().line + 1, node.Mark().column + 1};
    // Each file reference: present, a string, and not empty.
    auto read_path = [&](std::string_view key, std::string& out) {
      const Field* field = map.read(key, out);
      if (field != nullptr && out.empty()) {
        diag_.error(field->value_mark(), "'" + std::string(key) + "' must not be empty");
      }
    };
    read_path("cert", certificate.cert);
    read_path("key", certificate.key);
    read_path("pkcs12", certificate.pkcs12);
    // The shape rules look at which keys are written, valid or not.
    const Field* cert = map.get("cert");
    const Field* key = map.get("key");
    const Field* pkcs12 = map.get("pkcs12");
    if (pkcs12 != nullptr && (cert != nullptr || key != nullptr)) {
      diag_.error(pkcs12->key_mark(), "use either 'cert' with 'key', or 'pkcs12', not both");
    } else if (key != nullptr && cert == nullptr) {
      diag_.error(key->key_mark(), "key without its certificate (add 'cert')");
    } else if (cert != nullptr && key == nullptr) {
      diag_.error(cert->key_mark(), "certificate without its key (add 'key')");
    } else if (cert == nullptr && pkcs12 == nullptr) {
      diag_.error(map.mark(), "certificate entry needs 'cert' and 'key', or 'pkcs12'");
    }
    config_.tls.certificates.push_back(std::move(certificate));
  }

  void read_protocols(const Field& field) {
    const auto items = list_items(field, "protocols", diag_);
    std::vector<std::string> protocols;
    bool ok = field.value.IsNull() || field.value.IsSequence();
    for (const auto& item : items) {
      auto text = scalar_text(item, item.Mark(), "a protocol", diag_);
      if (!text) {
        ok = false;
        continue;
      }
      std::string upper;
      for (char c : *text) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      std::string canonical;
      if (upper == "TLSV1.2") {
        canonical = "TLSv1.2";
      } else if (upper == "TLSV1.3") {
        canonical = "TLSv1.3";
      } else if (upper == "SSLV2" || upper == "SSLV3" || upper == "TLSV1" || upper == "TLSV1.0" ||
                 upper == "TLSV1.1") {
        diag_.error(item.Mark(), "protocol '" + *text +
                                     "' is insecure and not allowed (use TLSv1.2 and/or TLSv1.3)");
        ok = false;
        continue;
      } else {
        diag_.error(item.Mark(), "unknown protocol '" + *text + "' (use TLSv1.2 and/or TLSv1.3)");
        ok = false;
        continue;
      }
      if (std::find(protocols.begin(), protocols.end(), canonical) != protocols.end()) {
        diag_.error(item.Mark(), "duplicate protocol '" + canonical + "'");
        ok = false;
        continue;
      }
      protocols.push_back(canonical);
    }
    if (ok && protocols.empty()) {
      diag_.error(field.value_mark(), "'protocols' must list at least one of TLSv1.2, TLSv1.3");
      return;
    }
    if (ok) config_.tls.protocols = std::move(protocols);
  }

  void read_classes(MapReader& top) {
    const Field* field = top.get("classes");
    if (is_empty_list(field)) {
      ClassConfig fallback;
      fallback.name = "default";  // tls_required defaults to "on"
      config_.classes.push_back(std::move(fallback));
      return;
    }
    const auto items = list_items(*field, "classes", diag_);
    std::map<std::string, YAML::Mark> names;
    for (std::size_t i = 0; i < items.size(); ++i) {
      MapReader map(items[i], items[i].Mark(), indexed("classes", i),
                    {"name", "from", "tls_required", "masquerade_address", "session_reuse_required",
                     "verify_client", "allow_per_user", "users"},
                    diag_, MapReader::Empty::kError);
      if (!map.is_mapping()) continue;
      ClassConfig cls;
      read_name(map, "class", names, cls.name);
      cls.from = read_cidrs(map, "from");
      const bool matches_everyone = is_empty_list(map.get("from"));
      const bool is_last = i + 1 == items.size();
      if (matches_everyone && !is_last) {
        diag_.error(map.mark(), "only the last class may omit 'from' (class '" + cls.name +
                                    "' matches every client, so the classes after it never apply)");
      } else if (!matches_everyone && is_last) {
        diag_.warning(map.mark(),
                      "the last class has a 'from' list: clients outside every "
                      "'from' range match no class");
      }
      const bool tls_required_ok =
          map.get("tls_required") == nullptr || read_tls_required(map, cls.tls_required);
      if (const Field* masquerade = map.read("masquerade_address", cls.masquerade_address)) {
        check_masquerade(cls.masquerade_address, masquerade->value_mark());
      }
      map.read("session_reuse_required", cls.session_reuse_required);
      VerifyClient verify = VerifyClient::kOff;
      if (const Field* verify_field =
              map.read_choice("verify_client", verify, kVerifyClientChoices)) {
        cls.verify_client = verify;
        verify_sites_.push_back({verify, verify_field->value_mark()});
      }
      const Field* per_user = map.read("allow_per_user", cls.allow_per_user);
      if (per_user != nullptr && cls.allow_per_user && tls_required_ok &&
          requires_tls_before_user(cls.tls_required)) {
        // The policy is decided after USER, but these need TLS before USER is sent.
        diag_.error(per_user->value_mark(), "cannot enforce both 'tls_required: " +
                                                std::string(to_string(cls.tls_required)) +
                                                "' and 'allow_per_user' at the same time");
      }
      if (const Field* users = map.get("users")) {
        // An invalid allow_per_user was reported already; do not pile on.
        const bool per_user_known = per_user != nullptr || map.get("allow_per_user") == nullptr;
        if (per_user_known && !cls.allow_per_user) {
          diag_.error(users->key_mark(), "'users' requires 'allow_per_user: true'");
        }
        read_users(*users, map.path() + ".users", cls.users);
      }
      config_.classes.push_back(std::move(cls));
    }
  }

  bool read_tls_required(MapReader& map, TlsRequired& out) {
    std::string text;
    const Field* field = map.read("tls_required", text);
    if (field == nullptr) return false;
    auto value = parse_tls_required(text);
    if (!value) {
      diag_.error(field->value_mark(), std::string(kTlsRequiredChoices));
      return false;
    }
    out = *value;
    return true;
  }

  void read_users(const Field& field, const std::string& path,
                  std::map<std::string, UserOverride>& users) {
    if (field.value.IsNull()) return;
    if (!field.value.IsMap()) {
      diag_.error(field.value_mark(), "'users' must map user names to settings");
      return;
    }
    for (const auto& pair : field.value) {
      const Field user{pair.first, pair.second};
      auto name = scalar_text(user.key, user.key_mark(), "a user name", diag_);
      if (!name) continue;
      if (name->empty()) {
        diag_.error(user.key_mark(), "user name must not be empty");
        continue;
      }
      if (users.count(*name) != 0) {
        diag_.error(user.key_mark(), "duplicate user '" + *name + "' in '" + path + "'");
        continue;
      }
      MapReader map(user.value, user.value_mark(), path + "." + *name, {"tls_required"}, diag_);
      if (!map.is_mapping()) continue;
      UserOverride override_settings;
      TlsRequired value = TlsRequired::kOn;
      if (map.get("tls_required") != nullptr && read_tls_required(map, value)) {
        override_settings.tls_required = value;
      }
      users.emplace(*name, override_settings);
    }
  }

  void check_masquerade(const std::string& address, const YAML::Mark& at) {
    if (!address.empty() && !is_ipv4_literal(address)) {
      diag_.error(at,
                  "masquerade_address must be an IPv4 address (it is sent in PASV replies), "
                  "not '" +
                      address + "'");
    }
  }

  void read_backends(MapReader& top) {
    const Field* field = top.get("backends");
    if (field == nullptr) return;
    const auto items = list_items(*field, "backends", diag_);
    std::map<std::string, YAML::Mark> names;
    for (std::size_t i = 0; i < items.size(); ++i) {
      MapReader map(
          items[i], items[i].Mark(), indexed("backends", i),
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
      MapReader health = section(map, "health_check", {"interval", "timeout"});
      health.read_duration("interval", backend.health_check.interval);
      health.read_duration("timeout", backend.health_check.timeout);
      map.read_choice(
          "data_mode", backend.data_mode,
          {{"passive", BackendDataMode::kPassive}, {"active", BackendDataMode::kActive}});
      map.read_choice("tls", backend.tls,
                      {{"off", BackendTls::kOff},
                       {"explicit", BackendTls::kExplicit},
                       {"implicit", BackendTls::kImplicit}});
      map.read("tls_ca", backend.tls_ca);
      map.read("tls_verify", backend.tls_verify);
      backend_marks_.push_back(map.mark());
      config_.backends.push_back(std::move(backend));
    }
  }

  void read_servers(MapReader& map, BackendConfig& backend) {
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
      auto address = parse_host_port(*text);
      if (!address) {
        diag_.error(item.Mark(),
                    "invalid server address '" + *text + "' (use host:port or [IPv6]:port)");
        continue;
      }
      backend.servers.push_back(std::move(*address));
    }
  }

  void read_passive(MapReader& top) {
    MapReader map = section(top, "passive", {"ports", "masquerade_address", "shared_port"});
    PassiveConfig& passive = config_.passive;
    std::string ports;
    if (const Field* field = map.read("ports", ports)) {
      passive_ports_mark_ = field->value_mark();
      if (auto range = parse_port_range(ports)) {
        passive.port_min = range->min;
        passive.port_max = range->max;
      } else {
        passive_ports_ok_ = false;
        diag_.error(field->value_mark(), "invalid port range '" + ports +
                                             "' (use e.g. 30000-30999 or 30000; ports 1-65535, "
                                             "low to high)");
      }
    } else if (map.get("ports") != nullptr) {
      passive_ports_ok_ = false;
    }
    if (const Field* field = map.read("masquerade_address", passive.masquerade_address)) {
      check_masquerade(passive.masquerade_address, field->value_mark());
    }
    if (const Field* field = map.read("shared_port", passive.shared_port)) shared_port_mark_ = field->value_mark();
  }

  void read_active(MapReader& top) {
    MapReader map = section(top, "active", {"enabled", "allow_foreign_address", "min_port"});
    map.read("enabled", config_.active.enabled);
    map.read("allow_foreign_address", config_.active.allow_foreign_address);
    map.read_int<uint16_t>("min_port", 1, 65535, config_.active.min_port);
  }

  void read_data(MapReader& top) {
    MapReader map = section(top, "data", {"allow_foreign_address", "stall_timeout"});
    map.read("allow_foreign_address", config_.data.allow_foreign_address);
    map.read_duration("stall_timeout", config_.data.stall_timeout);
  }

  void read_limits(MapReader& top) {
    MapReader map =
        section(top, "limits",
                {"max_sessions", "max_sessions_per_ip", "handshake_timeout", "login_timeout",
                 "idle_timeout", "data_connect_timeout", "max_line", "drain_timeout",
                 "login_failure_delay", "max_login_failures", "max_user_login_failures", "login_ban_time"});
    LimitsConfig& limits = config_.limits;
    constexpr uint32_t kMaxCount = std::numeric_limits<uint32_t>::max();
    map.read_int<uint32_t>("max_sessions", 1, kMaxCount, limits.max_sessions);
    map.read_int<uint32_t>("max_sessions_per_ip", 1, kMaxCount, limits.max_sessions_per_ip);
    map.read_duration("handshake_timeout", limits.handshake_timeout);
    map.read_duration("login_timeout", limits.login_timeout);
    map.read_duration("idle_timeout", limits.idle_timeout);
    map.read_duration("data_connect_timeout", limits.data_connect_timeout);
    std::size_t max_line = limits.max_line;
    if (const Field* field = map.read_size("max_line", max_line)) {
      if (max_line < kMinMaxLine) {
        diag_.error(field->value_mark(), "'max_line' must be at least 512 bytes");
      } else if (max_line > kMaxMaxLine) {
        diag_.error(field->value_mark(), "'max_line' must be at most 1MiB");
      } else {
        limits.max_line = max_line;
      }
    }
    // 0 = stop at once without waiting for transfers.
    map.read_duration("drain_timeout", limits.drain_timeout, /*allow_zero=*/true);
    // Login throttling per client address; 0 turns the delay or the ban off.
    map.read_duration("login_failure_delay", limits.login_failure_delay, /*allow_zero=*/true);
    map.read_int<uint32_t>("max_login_failures", 0, kMaxCount, limits.max_login_failures);
    map.read_int<uint32_t>("max_user_login_failures", 0, kMaxCount, limits.max_user_login_failures);
    map.read_duration("login_ban_time", limits.login_ban_time);
  }

  void read_metrics(MapReader& top) {
    MapReader map = section(top, "metrics", {"address"});
    const Field* field = map.read("address", config_.metrics.address);
    if (field == nullptr) {
      metrics_ok_ = map.get("address") == nullptr;
      if (metrics_ok_) metrics_address_ = *parse_host_port(config_.metrics.address);
      metrics_mark_ = map.mark();
      return;
    }
    metrics_mark_ = field->value_mark();
    if (config_.metrics.address.empty()) return;  // metrics off
    metrics_ok_ =
        read_bind_address(config_.metrics.address, metrics_mark_, "metrics", metrics_address_);
  }

  void read_logging(MapReader& top) {
    MapReader map = section(top, "logging", {"format", "level", "file"});
    map.read_choice("format", config_.logging.format,
                    {{"json", LogFormat::kJson}, {"text", LogFormat::kText}});
    map.read_choice("level", config_.logging.level,
                    {{"debug", LogLevel::kDebug},
                     {"info", LogLevel::kInfo},
                     {"warn", LogLevel::kWarn},
                     {"error", LogLevel::kError}});
    map.read("file", config_.logging.file);
  }

  void check_backend_references() {
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
        diag_.warning(backend_marks_[i],
                      "backend '" + config_.backends[i].name + "' is not used by any listener");
      }
    }
  }

  void check_socket_clashes() {
    const auto& listeners = config_.listeners;
    for (std::size_t i = 0; i < listeners.size(); ++i) {
      const ListenerSite& site = listener_sites_[i];
      if (!site.address_ok) continue;
      for (std::size_t j = 0; j < i; ++j) {
        if (listener_sites_[j].address_ok &&
            addresses_clash(listeners[i].address, listeners[j].address)) {
          diag_.error(site.address, "address " + listeners[i].address.to_string() +
                                        " clashes with listener '" + listeners[j].name + "' (" +
                                        listeners[j].address.to_string() + ")");
        }
      }
      if (metrics_ok_ && !config_.metrics.address.empty() &&
          addresses_clash(listeners[i].address, metrics_address_)) {
        diag_.error(metrics_mark_, "metrics address " + metrics_address_.to_string() +
                                       " clashes with listener '" + listeners[i].name + "'");
      }
    }
    if (!passive_ports_ok_) return;
    // Passive data sockets are opened on the control connection's local address, which
    // may be any listener's (or every address for a wildcard listener); the range must
    // therefore stay clear of every port the gateway listens on.
    const PassiveConfig& passive = config_.passive;
    const std::string range =
        std::to_string(passive.port_min) + "-" + std::to_string(passive.port_max);
    auto in_range = [&](uint16_t port) {
      return port >= passive.port_min && port <= passive.port_max;
    };
    for (std::size_t i = 0; i < listeners.size(); ++i) {
      if (!listener_sites_[i].address_ok || !in_range(listeners[i].address.port)) continue;
      diag_.error(passive_ports_mark_ ? *passive_ports_mark_ : listener_sites_[i].address,
                  "passive port range " + range + " overlaps listener '" + listeners[i].name +
                      "' (" + listeners[i].address.to_string() + ")");
    }
    if (metrics_ok_ && !config_.metrics.address.empty() && in_range(metrics_address_.port)) {
      diag_.error(passive_ports_mark_ ? *passive_ports_mark_ : metrics_mark_,
                  "passive port range " + range + " overlaps the metrics address " +
                      metrics_address_.to_string());
    }
  }

  static bool is_wildcard(const std::string& host) { return host == "0.0.0.0" || host == "::"; }
  // The shared ports of a wildcard listener also serve the other addresses of its family.
  static bool shares_data_address(const std::string& a, const std::string& b) {
    const bool v6a = a.find(':') != std::string::npos;
    const bool v6b = b.find(':') != std::string::npos;
    return a == b || (v6a == v6b && (is_wildcard(a) || is_wildcard(b)));
  }

  void check_shared_port() {
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
          diag_.error(at, "passive.shared_port: listeners '" + listeners[i].name + "' and '" + listeners[j].name +
                              "' share the address " +
                              (is_wildcard(listeners[i].address.host) ? listeners[i].address.host
                                                                      : listeners[j].address.host) +
                              " but not proxy_protocol, so its shared data port cannot tell whether to expect a "
                              "PROXY header");
        }
      }
    }
    bool reuse_optional = !config_.tls.session_reuse_required;
    for (const auto& cls : config_.classes) reuse_optional |= cls.session_reuse_required.value_or(true) == false;
    if (reuse_optional) {
      diag_.warning(at, "passive.shared_port matches protected data connections by the TLS session they resume: "
                        "session_reuse_required: false cannot apply there, a data connection that does not resume "
                        "is refused");
    }
  }

  void check_client_verification() {
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

  Config config_;
  Diagnostics diag_;
  std::vector<ListenerSite> listener_sites_;  // parallel to config_.listeners
  std::vector<YAML::Mark> backend_marks_;     // parallel to config_.backends
  bool backend_names_complete_ = true;        // false: "unknown backend" could be a false alarm
  std::vector<VerifySite> verify_sites_;
  std::optional<YAML::Mark> passive_ports_mark_;
  bool passive_ports_ok_ = true;
  std::optional<YAML::Mark> shared_port_mark_;
  HostPort metrics_address_;
  YAML::Mark metrics_mark_;
  bool metrics_ok_ = false;
};

}  // namespace

LoadResult load_config_text(const std::string& yaml_text, const std::string& file_name) {
  return Loader(file_name).load(yaml_text);
}

LoadResult load_config_file(const std::string& path) {
  auto failure = [&](const std::string& reason) {
    LoadResult result;
    result.errors.push_back(ConfigError{path, 0, 0, "cannot read the configuration: " + reason});
    return result;
  };
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return failure("is a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) return failure(std::strerror(errno));
  const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (in.bad()) return failure(std::strerror(errno));
  return load_config_text(text, path);
}

}  // namespace ftpsgate::config
