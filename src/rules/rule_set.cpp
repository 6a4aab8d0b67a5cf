#include "rules/rule_set.h"

#include <algorithm>

namespace ftpsgate::rules {

namespace {

bool listed(const std::vector<std::string>& list, std::string_view value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

bool applies(const Rule& rule, const Subject& subject) {
  switch (rule.level()) {
    case Level::kUser: return listed(rule.users, subject.user);
    case Level::kGroup:
      return std::any_of(subject.groups.begin(), subject.groups.end(),
                         [&](const std::string& g) { return listed(rule.groups, g); });
    case Level::kClass: return listed(rule.classes, subject.class_name);
    case Level::kEveryone: return true;
  }
  return false;
}

bool any_glob(const std::vector<Glob>& globs, std::string_view text) {
  return std::any_of(globs.begin(), globs.end(), [&](const Glob& g) { return g.matches(text); });
}

std::string_view base_name(std::string_view path) {
  const std::size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

// One rule's say on the command: nullopt = nothing to say.
enum class Say { kAllow, kDeny };
struct Said {
  Say say;
  std::string reason;
};

std::optional<Said> verb_say(const Rule& rule, std::string_view verb, Access access) {
  if (listed(rule.deny_verbs, verb)) return Said{Say::kDeny, "verb " + std::string(verb) + " denied"};
  if (!rule.only_verbs.empty() && access != Access::kNone && !listed(rule.only_verbs, verb)) {
    return Said{Say::kDeny, "verb " + std::string(verb) + " not among the allowed verbs"};
  }
  if (listed(rule.allow_verbs, verb) || listed(rule.only_verbs, verb)) return Said{Say::kAllow, ""};
  return std::nullopt;
}

std::optional<Said> path_say(const Rule& rule, const std::string& path, Access access) {
  if (any_glob(rule.deny_paths, path)) return Said{Say::kDeny, "path " + path + " denied"};
  if (access == Access::kWrite && any_glob(rule.deny_upload_names, base_name(path))) {
    return Said{Say::kDeny, "upload name " + std::string(base_name(path)) + " denied"};
  }
  if (!rule.allow_paths.empty()) {
    if (any_glob(rule.allow_paths, path)) return Said{Say::kAllow, ""};
    return Said{Say::kDeny, "path " + path + " outside the allowed paths"};
  }
  return std::nullopt;
}

// Levels from the most specific: the first with a say decides; deny beats allow there.
template <typename SayFn>
std::optional<RuleVerdict> decide(const std::vector<Rule>& rules, const Subject& subject, SayFn say_of) {
  for (int level = static_cast<int>(Level::kUser); level >= static_cast<int>(Level::kEveryone); --level) {
    std::optional<RuleVerdict> allow;
    std::optional<RuleVerdict> monitor;
    for (const Rule& rule : rules) {
      if (static_cast<int>(rule.level()) != level || !applies(rule, subject)) continue;
      const std::optional<Said> said = say_of(rule);
      if (!said) continue;
      if (said->say == Say::kAllow) {
        if (!allow) allow = RuleVerdict{RuleVerdict::Outcome::kAllow, rule.name, ""};
        continue;
      }
      if (rule.enforce) return RuleVerdict{RuleVerdict::Outcome::kDeny, rule.name, said->reason};
      if (!monitor) monitor = RuleVerdict{RuleVerdict::Outcome::kMonitor, rule.name, said->reason};
    }
    if (monitor) return monitor;
    if (allow) return allow;
  }
  return std::nullopt;
}

}  // namespace

Level Rule::level() const {
  if (!users.empty()) return Level::kUser;
  if (!groups.empty()) return Level::kGroup;
  if (!classes.empty()) return Level::kClass;
  return Level::kEveryone;
}

RuleVerdict evaluate(const std::vector<Rule>& rules, const Subject& subject, std::string_view verb,
                     const std::optional<std::string>& path) {
  const Access access = command_access(verb, "").access;
  auto by_verb = decide(rules, subject, [&](const Rule& rule) { return verb_say(rule, verb, access); });
  if (by_verb && by_verb->outcome == RuleVerdict::Outcome::kDeny) return *by_verb;
  std::optional<RuleVerdict> by_path;
  if (path) by_path = decide(rules, subject, [&](const Rule& rule) { return path_say(rule, *path, access); });
  if (by_path && by_path->outcome == RuleVerdict::Outcome::kDeny) return *by_path;
  // Monitor mode: the first would-be denial is what gets logged.
  if (by_verb && by_verb->outcome == RuleVerdict::Outcome::kMonitor) return *by_verb;
  if (by_path && by_path->outcome == RuleVerdict::Outcome::kMonitor) return *by_path;
  return RuleVerdict{};
}

bool any_rule_applies(const std::vector<Rule>& rules, const Subject& subject) {
  return std::any_of(rules.begin(), rules.end(), [&](const Rule& rule) { return applies(rule, subject); });
}

bool path_rules_apply(const std::vector<Rule>& rules, const Subject& subject) {
  return std::any_of(rules.begin(), rules.end(), [&](const Rule& rule) {
    return applies(rule, subject) &&
           (!rule.allow_paths.empty() || !rule.deny_paths.empty() || !rule.deny_upload_names.empty());
  });
}

UploadLimits upload_limits(const std::vector<Rule>& rules, const Subject& subject) {
  for (int level = static_cast<int>(Level::kUser); level >= static_cast<int>(Level::kEveryone); --level) {
    for (const Rule& rule : rules) {
      if (static_cast<int>(rule.level()) != level || !applies(rule, subject) || !rule.max_upload_size) continue;
      return UploadLimits{rule.max_upload_size, rule.delete_partial, rule.name, rule.enforce};
    }
  }
  return {};
}

const Rule* inspection_rule(const std::vector<Rule>& rules, const Subject& subject) {
  for (int level = static_cast<int>(Level::kUser); level >= static_cast<int>(Level::kEveryone); --level) {
    for (const Rule& rule : rules) {
      if (static_cast<int>(rule.level()) == level && rule.inspection && applies(rule, subject)) return &rule;
    }
  }
  return nullptr;
}

std::string upload_excess_message(const UploadLimits& limits, uint64_t bytes) {
  std::string message = "upload of " + std::to_string(bytes) + " bytes exceeds max_size " +
                        std::to_string(limits.max_size.value_or(0)) + " of rule '" + limits.rule + "'";
  if (limits.existing > 0) message += " (" + std::to_string(limits.existing) + " bytes already in the file)";
  return message;
}

}  // namespace ftpsgate::rules
