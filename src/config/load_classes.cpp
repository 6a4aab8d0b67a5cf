// The config loader: classes: address matching, tls_required, per-user policy, masquerading.
#include "config/loader.h"

namespace ftpsgate::config::detail {

void Loader::read_classes(MapReader& top) {
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
                  {"name", "from", "tls_required", "masquerade_address", "session_reuse_required", "verify_client",
                   "allow_per_user", "users", "auth", "bandwidth", "inspection"},
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
    const bool tls_required_ok = map.get("tls_required") == nullptr || read_tls_required(map, cls.tls_required);
    if (const Field* masquerade = map.read("masquerade_address", cls.masquerade_address)) {
      check_masquerade(cls.masquerade_address, masquerade->value_mark());
    }
    SessionReuse reuse = SessionReuse::kRequired;
    if (read_session_reuse(map, reuse) != nullptr) cls.session_reuse_required = reuse;
    VerifyClient verify = VerifyClient::kOff;
    if (const Field* verify_field = map.read_choice("verify_client", verify, kVerifyClientChoices)) {
      cls.verify_client = verify;
      verify_sites_.push_back({verify, verify_field->value_mark()});
    }
    const Field* per_user = map.read("allow_per_user", cls.allow_per_user);
    if (per_user != nullptr && cls.allow_per_user && tls_required_ok && requires_tls_before_user(cls.tls_required)) {
      // The policy is decided after USER, but these need TLS before USER is sent.
      diag_.error(per_user->value_mark(),
                  "cannot enforce both 'tls_required: " + std::string(to_string(cls.tls_required)) +
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
    if (map.get("auth") != nullptr) {
      cls.auth.emplace();
      read_auth_chain(map, *cls.auth);
    }
    read_bandwidth(map, cls.bandwidth);
    read_inspection_policy(map, cls.inspection);
    config_.classes.push_back(std::move(cls));
  }
}

void Loader::read_bandwidth(MapReader& cls, BandwidthConfig& out) {
  MapReader bandwidth = section(cls, "bandwidth", {"session", "user", "class"});
  for (auto [key, limit] : {std::pair<std::string_view, BandwidthLimit*>{"session", &out.session},
                            {"user", &out.user}, {"class", &out.all}}) {
    MapReader scope = section(bandwidth, key, {"download", "upload"});
    for (auto [direction, rate] : {std::pair<std::string_view, std::optional<uint64_t>*>{"download", &limit->download},
                                   {"upload", &limit->upload}}) {
      std::string text;
      const Field* field = scope.read(direction, text);
      if (field == nullptr) continue;
      *rate = parse_rate(text);
      if (!*rate) diag_.error(field->value_mark(), "invalid rate '" + text + "' (use e.g. 10MB/s, 512KiB/s)");
    }
  }
}

bool Loader::read_tls_required(MapReader& map, TlsRequired& out) {
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

void Loader::read_users(const Field& field, const std::string& path, std::map<std::string, UserOverride>& users) {
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

void Loader::check_masquerade(const std::string& address, const YAML::Mark& at) {
  if (!address.empty() && !is_ipv4_literal(address)) {
    diag_.error(at,
                "masquerade_address must be an IPv4 address (it is sent in PASV replies), "
                "not '" +
                    address + "'");
  }
}

}  // namespace ftpsgate::config::detail
