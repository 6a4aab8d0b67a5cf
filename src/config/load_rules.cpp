// The config loader: rules (issue 15): verb, path and upload rules per class, user or group.
#include "config/loader.h"

namespace ftpsgate::config::detail {

std::vector<std::string> Loader::read_rule_verbs(MapReader& map, std::string_view key) {
  std::vector<std::string> verbs;
  const Field* field = map.get(key);
  if (field == nullptr) return verbs;
  for (const auto& item : list_items(*field, key, diag_)) {
    auto text = scalar_text(item, item.Mark(), "a verb", diag_);
    if (!text) continue;
    std::string verb = *text;
    for (char& c : verb) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (!rules::is_rule_verb(verb)) {
      diag_.error(item.Mark(), "unknown verb '" + *text +
                                   "' (rules name RETR SIZE MDTM LIST NLST MLSD MLST STAT STOR APPE STOU DELE MKD "
                                   "XMKD RMD XRMD RNFR RNTO CWD XCWD CDUP XCUP SITE)");
      continue;
    }
    verbs.push_back(std::move(verb));
  }
  return verbs;
}

std::vector<rules::Glob> Loader::read_globs(MapReader& map, std::string_view key) {
  std::vector<rules::Glob> globs;
  const Field* field = map.get(key);
  if (field == nullptr) return globs;
  for (const auto& item : list_items(*field, key, diag_)) {
    auto text = scalar_text(item, item.Mark(), "a glob", diag_);
    if (!text) continue;
    std::string why;
    auto glob = rules::Glob::compile(*text, &why);
    if (!glob) {
      diag_.error(item.Mark(), "invalid glob '" + *text + "': " + why);
      continue;
    }
    globs.push_back(std::move(*glob));
  }
  return globs;
}

void Loader::read_rules(MapReader& top) {
  const Field* field = top.get("rules");
  if (field == nullptr) return;
  const auto items = list_items(*field, "rules", diag_);
  std::map<std::string, YAML::Mark> names;
  for (std::size_t i = 0; i < items.size(); ++i) {
    MapReader map(items[i], items[i].Mark(), indexed("rules", i),
                  {"name", "users", "groups", "classes", "verbs", "paths", "uploads", "inspection", "enforce"}, diag_,
                  MapReader::Empty::kError);
    if (!map.is_mapping()) continue;
    rules::Rule rule;
    read_name(map, "rule", names, rule.name);
    rule.users = read_string_list(map, "users", diag_);
    rule.groups = read_string_list(map, "groups", diag_);
    rule.classes = read_string_list(map, "classes", diag_);
    for (const auto& cls : rule.classes) {
      const bool known = std::any_of(config_.classes.begin(), config_.classes.end(),
                                     [&](const ClassConfig& c) { return c.name == cls; });
      if (!known) diag_.error(map.get("classes")->value_mark(), "unknown class '" + cls + "'");
    }
    if (!rule.users.empty() + !rule.groups.empty() + !rule.classes.empty() > 1) {
      diag_.error(map.mark(), "a rule names one kind of subject (users, groups or classes), so its level is clear");
    }
    MapReader verbs = section(map, "verbs", {"preset", "allow", "deny", "only"});
    std::string preset;
    if (const Field* p = verbs.read("preset", preset)) {
      const auto& denied = rules::preset_denied_verbs(preset);
      if (denied.empty()) diag_.error(p->value_mark(), "preset must be one of: read_only, upload_only");
      rule.deny_verbs = denied;
    }
    rule.allow_verbs = read_rule_verbs(verbs, "allow");
    for (auto& verb : read_rule_verbs(verbs, "deny")) rule.deny_verbs.push_back(std::move(verb));
    rule.only_verbs = read_rule_verbs(verbs, "only");
    for (const auto& verb : rule.allow_verbs) {
      const bool also_denied = std::find(rule.deny_verbs.begin(), rule.deny_verbs.end(), verb) != rule.deny_verbs.end();
      if (also_denied) {
        diag_.error(verbs.get("allow")->value_mark(),
                    "verb " + verb + " is both allowed and denied by rule '" + rule.name + "'");
      }
    }
    if (!rule.only_verbs.empty() && !rule.allow_verbs.empty()) {
      diag_.error(verbs.get("only")->key_mark(), "'only' already allows its verbs and denies the rest; drop 'allow'");
    }
    MapReader paths = section(map, "paths", {"allow", "deny"});
    rule.allow_paths = read_globs(paths, "allow");
    rule.deny_paths = read_globs(paths, "deny");
    for (const auto& glob : rule.deny_paths) {
      for (const auto& allowed : rule.allow_paths) {
        if (glob.pattern() == allowed.pattern()) {
          diag_.error(paths.get("deny")->value_mark(),
                      "path " + glob.pattern() + " is both allowed and denied by rule '" + rule.name + "'");
        }
      }
      if (glob.pattern().front() != '/') {
        diag_.error(paths.get("deny")->value_mark(), "path globs are absolute ('" + glob.pattern() + "')");
      }
    }
    for (const auto& glob : rule.allow_paths) {
      if (glob.pattern().front() != '/') {
        diag_.error(paths.get("allow")->value_mark(), "path globs are absolute ('" + glob.pattern() + "')");
      }
    }
    MapReader uploads = section(map, "uploads", {"deny_names", "max_size", "delete_partial"});
    rule.deny_upload_names = read_globs(uploads, "deny_names");
    std::size_t max_size = 0;
    if (uploads.read_size("max_size", max_size) != nullptr) rule.max_upload_size = max_size;
    uploads.read("delete_partial", rule.delete_partial);
    if (map.get("inspection") != nullptr) {
      rule.inspection.emplace();
      read_inspection_policy(map, *rule.inspection);
    }
    if (const Field* enforce = map.read("enforce", rule.enforce); enforce != nullptr && !rule.enforce && rule.inspection) {
      // Monitor mode reports what a rule would deny; a scan has no "would": its verdict is
      // the file's fate. (on_error and above_max_scan_size are the relaxations.)
      diag_.error(enforce->value_mark(), "a rule with 'inspection' cannot have 'enforce: false'");
    }
    config_.rules.push_back(std::move(rule));
  }
}

}  // namespace ftpsgate::config::detail
