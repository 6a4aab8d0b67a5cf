// Command, path and upload rules for classes, users and groups (issue 15, pure).
//
// Order: a rule's level is the most specific subject it names (user > group > class >
// everyone). Levels are tried from the most specific down; the first level with a matching
// rule that has something to say decides, and within a level deny beats allow. Nothing
// said anywhere = allowed. A rule with `enforce: false` (monitor mode) decides the same way
// but its denial only logs and counts.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "inspection/inspection_policy.h"
#include "rules/command_access.h"
#include "rules/glob.h"

namespace ftpsgate::rules {

enum class Level { kEveryone = 0, kClass = 1, kGroup = 2, kUser = 3 };

struct Rule {
  std::string name;
  std::vector<std::string> users;
  std::vector<std::string> groups;
  std::vector<std::string> classes;
  // Verbs (upper case). `only` set = every other file-tree verb is denied at this level.
  std::vector<std::string> allow_verbs;
  std::vector<std::string> deny_verbs;  // presets already expanded
  std::vector<std::string> only_verbs;
  // Paths: `allow` confines the level to these globs; `deny` carves out of them.
  std::vector<Glob> allow_paths;
  std::vector<Glob> deny_paths;
  // Uploads.
  std::vector<Glob> deny_upload_names;  // matched against the file name only
  std::optional<uint64_t> max_upload_size;
  bool delete_partial = false;
  // Inspection for this rule's subjects, instead of their class's (issue 16).
  std::optional<inspection::InspectionPolicy> inspection;
  bool enforce = true;

  Level level() const;
};

struct Subject {
  std::string user;
  std::vector<std::string> groups;
  std::string class_name;
};

struct RuleVerdict {
  enum class Outcome { kAllow, kDeny, kMonitor };  // kMonitor: a denial that only logs
  Outcome outcome = Outcome::kAllow;
  std::string rule;    // the deciding rule ("" = none)
  std::string reason;  // "verb DELE denied", "path /etc/passwd outside the allowed paths", ...
  bool denied() const { return outcome == Outcome::kDeny; }
};

// A command on a resolved path (nullopt: the command names none, e.g. NOOP).
RuleVerdict evaluate(const std::vector<Rule>& rules, const Subject& subject, std::string_view verb,
                     const std::optional<std::string>& path);

// Whether any rule names `subject` (an everyone rule always does); whether one of those
// has paths or upload names to check (only then must every path resolve).
bool any_rule_applies(const std::vector<Rule>& rules, const Subject& subject);
bool path_rules_apply(const std::vector<Rule>& rules, const Subject& subject);

// The upload limits that apply to `subject` (most specific level that sets them).
struct UploadLimits {
  std::optional<uint64_t> max_size;
  bool delete_partial = false;
  std::string rule;
  bool enforce = true;
  // Bytes the target file keeps before this upload's (REST offset, APPE's current size):
  // they count, or uploads in chunks would grow a file past max_size.
  uint64_t existing = 0;
  // What this upload may still add (max_size set).
  uint64_t remaining() const { return *max_size > existing ? *max_size - existing : 0; }
  // The cap the relay enforces while the bytes flow; none when max_size is unset or only
  // audited (enforce false: the transfer completes and the excess is reported after).
  std::optional<uint64_t> relay_limit() const {
    return max_size && enforce ? std::optional<uint64_t>(remaining()) : std::nullopt;
  }
};
UploadLimits upload_limits(const std::vector<Rule>& rules, const Subject& subject);
// The inspection that applies to `subject`: the most specific level's rule that sets one
// (nullptr: none does, the class's own applies).
const Rule* inspection_rule(const std::vector<Rule>& rules, const Subject& subject);

// "upload of at least N bytes exceeds max_size M of rule 'R' (K bytes already in the file)".
std::string upload_excess_message(const UploadLimits& limits, uint64_t bytes);

}  // namespace ftpsgate::rules
