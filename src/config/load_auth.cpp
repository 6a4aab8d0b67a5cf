// The config loader: auth (issue 14): providers (users file, LDAP, certificate), backend
// logins, and the provider chains that listeners and classes name.
#include <filesystem>
#include <fstream>
#include <optional>

#include "config/loader.h"
#include "ftp/command.h"

namespace ftpsgate::config::detail {

namespace {

// A password file holds one password, not a document.
constexpr std::size_t kMaxSecretFile = 4096;
// About 100,000 users; a runaway generator or a device path must not take the gateway.
constexpr std::size_t kMaxUsersFile = std::size_t{16} << 20;

// Only regular files: a FIFO or a device (/dev/zero) would block or never end.
std::optional<std::string> regular_file_problem(const std::string& path) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec) return ec.message();
  if (!std::filesystem::is_regular_file(status)) return std::string("not a regular file");
  return std::nullopt;
}

// A password file's one line (trailing newline dropped, bounded); nullopt with `problem`
// set to the whole message, `what` naming the key.
std::optional<std::string> read_one_line(const std::string& path, std::string_view what, std::string& problem) {
  const std::string named = std::string(what) + " '" + path + "'";
  if (auto bad = regular_file_problem(path)) {
    problem = "cannot read " + named + ": " + *bad;
    return std::nullopt;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    problem = "cannot read " + named + ": " + std::strerror(errno);
    return std::nullopt;
  }
  std::string text(kMaxSecretFile + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (text.size() > kMaxSecretFile) {
    problem = named + " is longer than " + std::to_string(kMaxSecretFile) + " bytes";
    return std::nullopt;
  }
  if (!text.empty() && text.back() == '\n') text.pop_back();
  if (!text.empty() && text.back() == '\r') text.pop_back();
  if (text.empty() || text.find_first_of(std::string("\r\n\0", 3)) != std::string::npos) {
    problem = named + " must hold one non-empty line";
    return std::nullopt;
  }
  return text;
}

const std::initializer_list<std::string_view> kProviderKeys = {
    "name", "type", "path",  // file
    "url", "start_tls", "ca", "bind_dn", "search_base", "search_filter", "service_dn", "service_password_file",
    "group_base", "group_filter", "group_attribute", "timeout",  // ldap
    "require", "rules"};                                       // certificate

// Keys that only one provider type takes.
const std::map<std::string_view, AuthProviderType> kTypedKeys = {
    {"path", AuthProviderType::kFile},
    {"url", AuthProviderType::kLdap},
    {"start_tls", AuthProviderType::kLdap},
    {"ca", AuthProviderType::kLdap},
    {"bind_dn", AuthProviderType::kLdap},
    {"search_base", AuthProviderType::kLdap},
    {"search_filter", AuthProviderType::kLdap},
    {"service_dn", AuthProviderType::kLdap},
    {"service_password_file", AuthProviderType::kLdap},
    {"group_base", AuthProviderType::kLdap},
    {"group_filter", AuthProviderType::kLdap},
    {"group_attribute", AuthProviderType::kLdap},
    {"timeout", AuthProviderType::kLdap},
    {"require", AuthProviderType::kCertificate},
    {"rules", AuthProviderType::kCertificate},
};

std::string_view type_name(AuthProviderType type) {
  switch (type) {
    case AuthProviderType::kFile: return "file";
    case AuthProviderType::kLdap: return "ldap";
    case AuthProviderType::kCertificate: return "certificate";
    case AuthProviderType::kPassthrough: return "passthrough";
  }
  return "?";
}

}  // namespace

void Loader::read_auth_chain(MapReader& map, std::vector<std::string>& out) {
  const Field* field = map.get("auth");
  if (field == nullptr) return;
  AuthChainSite site;
  for (const auto& item : list_items(*field, "auth", diag_)) {
    auto text = scalar_text(item, item.Mark(), "an 'auth' provider name", diag_);
    if (!text) continue;
    out.push_back(*text);
    site.chain.push_back(*text);
    site.marks.push_back(item.Mark());
  }
  if (field->value.IsSequence() && field->value.size() == 0) {
    diag_.error(field->value_mark(), "'auth' lists no provider (omit it for passthrough, or name 'passthrough')");
  }
  auth_chain_sites_.push_back(std::move(site));
}

void Loader::read_auth(MapReader& top) {
  MapReader auth = section(top, "auth", {"workers", "max_pending", "timeout", "providers", "backend_logins"});
  auth.read_int<uint32_t>("workers", 1, 64, config_.auth.workers);
  auth.read_int<std::size_t>("max_pending", 1, 100000, config_.auth.max_pending);
  auth.read_duration("timeout", config_.auth.timeout);
  std::map<std::string, YAML::Mark> names;
  if (const Field* providers = auth.get("providers")) {
    const auto items = list_items(*providers, "providers", diag_);
    for (std::size_t i = 0; i < items.size(); ++i) read_auth_provider(items[i], i, names);
  }
  read_backend_logins(auth);
}

void Loader::read_auth_provider(const YAML::Node& node, std::size_t index, std::map<std::string, YAML::Mark>& names) {
  MapReader map(node, node.Mark(), indexed("auth.providers", index), kProviderKeys, diag_, MapReader::Empty::kError);
  if (!map.is_mapping()) return;
  AuthProviderConfig provider;
  read_name(map, "auth provider", names, provider.name);
  if (provider.name == "passthrough") {
    diag_.error(map.get("name")->value_mark(), "'passthrough' is built in and cannot be redefined");
    return;
  }
  if (map.require("type") == nullptr) return;
  if (map.read_choice("type", provider.type,
                      {{"file", AuthProviderType::kFile},
                       {"ldap", AuthProviderType::kLdap},
                       {"certificate", AuthProviderType::kCertificate}}) == nullptr) {
    return;
  }
  for (const auto& [key, type] : kTypedKeys) {
    if (type == provider.type) continue;
    if (const Field* stray = map.get(key)) {
      diag_.error(stray->key_mark(), "'" + std::string(key) + "' belongs to " + std::string(type_name(type)) +
                                         " providers, not to type " + std::string(type_name(provider.type)));
    }
  }
  switch (provider.type) {
    case AuthProviderType::kFile: {
      if (const Field* path = read_required(map, "path", provider.path)) {
        provider.users = load_users_file(provider.path, path->value_mark());
      }
      break;
    }
    case AuthProviderType::kLdap:
      read_ldap_provider(map, provider);
      break;
    case AuthProviderType::kCertificate:
      map.read_choice("require", provider.require,
                      {{"certificate", CertificateRequire::kCertificate},
                       {"certificate+password", CertificateRequire::kCertificateAndPassword}});
      read_certificate_rules(map, provider);
      if (!certificate_provider_mark_) certificate_provider_mark_ = map.mark();
      break;
    case AuthProviderType::kPassthrough:
      break;
  }
  config_.auth.providers.push_back(std::move(provider));
}

void Loader::read_ldap_provider(MapReader& map, AuthProviderConfig& provider) {
  auth::LdapSettings& ldap = provider.ldap;
  if (const Field* url = read_required(map, "url", ldap.url)) {
    bool ok = !ldap.url.empty();
    for (std::size_t start = 0; ok && start < ldap.url.size();) {
      const std::size_t end = std::min(ldap.url.find(' ', start), ldap.url.size());
      const std::string one = ldap.url.substr(start, end - start);
      const std::size_t scheme = one.rfind("ldap://", 0) == 0 ? 7 : one.rfind("ldaps://", 0) == 0 ? 8 : 0;
      ok = scheme != 0 && one.size() > scheme && one.find_first_of("?#") == std::string::npos;
      start = end + 1;
    }
    if (!ok) diag_.error(url->value_mark(), "url must be ldap://host[:port] or ldaps://host[:port] (space-separated list)");
  }
  const Field* start_tls = map.read("start_tls", ldap.start_tls);
  if (ldap.start_tls && ldap.url.find("ldaps://") != std::string::npos) {
    diag_.error(start_tls->value_mark(), "start_tls applies to ldap:// URLs; ldaps:// is TLS from the start");
  }
  if (ldap.url.rfind("ldap://", 0) == 0 && !ldap.start_tls) {
    diag_.warning(map.get("url")->value_mark(),
                  "ldap:// without start_tls: true sends passwords to the directory in clear");
  }
  if (const Field* ca = map.read("ca", ldap.ca_file); ca != nullptr && !std::ifstream(ldap.ca_file)) {
    diag_.error(ca->value_mark(), "cannot read the LDAP CA file '" + ldap.ca_file + "': " + std::strerror(errno));
  }
  const Field* bind_dn = map.read("bind_dn", ldap.bind_dn_template);
  const Field* base = map.read("search_base", ldap.search_base);
  if ((bind_dn != nullptr) == (base != nullptr)) {
    diag_.error(map.mark(), "an ldap provider needs either bind_dn (a template with {user}) or search_base "
                            "(search-then-bind), not both");
  }
  if (bind_dn != nullptr && ldap.bind_dn_template.find("{user}") == std::string::npos) {
    diag_.error(bind_dn->value_mark(), "bind_dn must contain {user}");
  }
  if (const Field* filter = map.read("search_filter", ldap.search_filter)) {
    if (ldap.search_filter.find("{user}") == std::string::npos || ldap.search_filter.front() != '(' ||
        ldap.search_filter.back() != ')') {
      diag_.error(filter->value_mark(), "search_filter must be a parenthesised LDAP filter containing {user}");
    }
  }
  map.read("service_dn", ldap.service_dn);
  if (const Field* file = map.read("service_password_file", provider.service_password_file)) {
    if (auto secret = read_secret_file(provider.service_password_file, file->value_mark(), "service_password_file")) {
      ldap.service_password = std::move(*secret);
    }
  }
  if (!ldap.service_dn.empty() && provider.service_password_file.empty()) {
    diag_.error(map.get("service_dn")->value_mark(), "service_dn needs service_password_file");
  }
  map.read("group_base", ldap.group_base);
  map.read("group_filter", ldap.group_filter);
  map.read("group_attribute", ldap.group_attribute);
  map.read_duration("timeout", ldap.timeout);
}

void Loader::read_certificate_rules(MapReader& map, AuthProviderConfig& provider) {
  const Field* field = map.get("rules");
  if (is_empty_list(field)) {
    diag_.error(field != nullptr ? field->value_mark() : map.mark(),
                "a certificate provider needs at least one rule ('rules')");
    return;
  }
  const auto items = list_items(*field, "rules", diag_);
  for (std::size_t i = 0; i < items.size(); ++i) {
    MapReader rule_map(items[i], items[i].Mark(), map.path() + "." + indexed("rules", i),
                       {"field", "equals", "prefix", "suffix", "user", "groups"}, diag_, MapReader::Empty::kError);
    if (!rule_map.is_mapping()) continue;
    identity::CertificateRule rule;
    if (const Field* f = read_required(rule_map, "field", rule.field); f != nullptr && !identity::is_certificate_field(rule.field)) {
      diag_.error(f->value_mark(), std::string(kCertificateFieldChoices));
    }
    rule_map.read("equals", rule.equals);
    rule_map.read("prefix", rule.prefix);
    rule_map.read("suffix", rule.suffix);
    if (const Field* user = rule_map.read("user", rule.user); user != nullptr && rule.user.empty()) {
      diag_.error(user->value_mark(), "user must not be empty");
    }
    if (rule.field == "dn" && rule.equals.empty()) {
      diag_.error(rule_map.mark(), "a 'dn' rule needs 'equals' (a whole DN is never a user name)");
    }
    rule.groups = read_string_list(rule_map, "groups", diag_);
    provider.rules.push_back(std::move(rule));
  }
}

std::optional<std::string> Loader::read_secret_file(const std::string& path, const YAML::Mark& at,
                                                    std::string_view what) {
  std::string problem;
  auto secret = read_one_line(path, what, problem);
  if (!secret) diag_.error(at, std::move(problem));
  return secret;
}

std::shared_ptr<const UsersTable> Loader::load_users_file(const std::string& path, const YAML::Mark& at) {
  if (auto problem = regular_file_problem(path)) {
    diag_.error(at, "cannot read the users file '" + path + "': " + *problem);
    return nullptr;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    diag_.error(at, "cannot read the users file '" + path + "': " + std::strerror(errno));
    return nullptr;
  }
  std::string text(kMaxUsersFile + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (text.size() > kMaxUsersFile) {
    diag_.error(at, "the users file '" + path + "' is larger than 16MiB");
    return nullptr;
  }
  identity::UsersFile parsed = identity::parse_users_file(text);
  for (auto& error : parsed.errors) diag_.error_in(path, error.line, error.column, std::move(error.message));
  auto table = std::make_shared<UsersTable>();
  for (auto& [name, entry] : parsed.users) {
    if (entry.tls_required) {
      if (auto value = parse_tls_required(*entry.tls_required)) {
        table->tls_required[name] = *value;
      } else {
        diag_.error_in(path, entry.line, 1, "user '" + name + "': " + std::string(kTlsRequiredChoices));
      }
    }
    if (!entry.backend_user.empty() && entry.backend_password_file.empty()) {
      diag_.error_in(path, entry.line, 1, "user '" + name + "': backend_user needs backend_password_file");
    }
    if (!entry.backend_password_file.empty()) {
      std::string problem;
      auto value = read_one_line(entry.backend_password_file, "backend_password_file", problem);
      if (!value) {
        diag_.error_in(path, entry.line, 1,
                       "user '" + name + "': cannot read backend_password_file '" + entry.backend_password_file +
                           "' (one non-empty line expected)");
      } else {
        entry.backend_password = identity::Secret(std::move(*value));
      }
    }
    if (!entry.backend.empty()) auth_backend_refs_.emplace_back(entry.backend, at);
  }
  table->users = std::move(parsed.users);
  return table;
}

void Loader::read_backend_logins(MapReader& auth) {
  const Field* field = auth.get("backend_logins");
  if (field == nullptr) return;
  const auto items = list_items(*field, "backend_logins", diag_);
  for (std::size_t i = 0; i < items.size(); ++i) {
    MapReader map(items[i], items[i].Mark(), indexed("auth.backend_logins", i),
                  {"users", "groups", "classes", "backend", "backend_user", "backend_password_file"}, diag_,
                  MapReader::Empty::kError);
    if (!map.is_mapping()) continue;
    identity::BackendLoginRule rule;
    rule.users = read_string_list(map, "users", diag_);
    rule.groups = read_string_list(map, "groups", diag_);
    rule.classes = read_string_list(map, "classes", diag_);
    if (const Field* backend = map.read("backend", rule.backend)) {
      auth_backend_refs_.emplace_back(rule.backend, backend->value_mark());
    }
    const Field* user = map.read("backend_user", rule.backend_user);
    std::string password_file;
    const Field* password = map.read("backend_password_file", password_file);
    if (user != nullptr && !ftp::is_acceptable_user_name(rule.backend_user)) {
      diag_.error(user->value_mark(), "invalid backend_user");
    }
    if ((user != nullptr) != (password != nullptr)) {
      diag_.error(map.mark(), "backend_user and backend_password_file go together (a service account)");
    } else if (password != nullptr) {
      if (auto secret = read_secret_file(password_file, password->value_mark(), "backend_password_file")) {
        rule.backend_password = identity::Secret(std::move(*secret));
      }
    }
    if (rule.backend.empty() && rule.backend_user.empty()) {
      diag_.error(map.mark(), "a backend_logins entry needs backend, or backend_user with backend_password_file");
    }
    config_.auth.backend_logins.push_back(std::move(rule));
  }
}

void Loader::check_auth_references() {
  for (const auto& site : auth_chain_sites_) {
    for (std::size_t i = 0; i < site.chain.size(); ++i) {
      const std::string& name = site.chain[i];
      const bool last = i + 1 == site.chain.size();
      if (name == "passthrough") {
        if (!last) {
          diag_.error(site.marks[i], "'passthrough' must be the last provider (the ones after it would never run)");
        }
        continue;
      }
      const AuthProviderConfig* provider = config_.auth.find(name);
      if (provider == nullptr) {
        diag_.error(site.marks[i], "unknown auth provider '" + name + "'");
        continue;
      }
      if (provider->type == AuthProviderType::kCertificate && i != 0) {
        diag_.error(site.marks[i], "a certificate provider must come first in the chain");
      }
      if (provider->type == AuthProviderType::kCertificate && provider->require == CertificateRequire::kCertificateAndPassword &&
          last) {
        diag_.error(site.marks[i], "certificate+password needs a provider after '" + name +
                                       "' to verify the password");
      }
      if (provider->type == AuthProviderType::kCertificate && provider->require == CertificateRequire::kCertificate &&
          !last) {
        diag_.error(site.marks[i + 1], "'" + name + "' (require: certificate) decides every login alone; the "
                                           "providers after it would never run (use certificate+password)");
      }
    }
  }
  if (certificate_provider_mark_) {
    bool verifies = config_.tls.verify_client != VerifyClient::kOff;
    for (const auto& cls : config_.classes) verifies |= cls.verify_client.value_or(VerifyClient::kOff) != VerifyClient::kOff;
    if ((config_.tls.client_ca.empty() && config_.tls.client_ca_dir.empty()) || !verifies) {
      diag_.error(*certificate_provider_mark_,
                  "a certificate provider needs tls.client_ca (or client_ca_dir) and verify_client: optional or on");
    }
  }
  if (!backend_names_complete_) return;
  for (const auto& [name, mark] : auth_backend_refs_) {
    if (config_.find_backend(name) == nullptr) diag_.error(mark, "unknown backend '" + name + "'");
  }
}

}  // namespace ftpsgate::config::detail
