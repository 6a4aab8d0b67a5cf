// libFuzzer target: the pure rules code (issue 15): path resolution, glob matching and the
// rules filter. The first byte picks what the rest of the input is. The filter's safety
// invariant: a command it lets through on a confined tree names only paths inside it.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "ftp/command.h"
#include "fuzz_check.h"
#include "fuzz_lines.h"
#include "pipeline/rules_filter.h"
#include "rules/command_access.h"
#include "rules/ftp_path.h"
#include "rules/glob.h"

namespace {

using namespace ftpsgate;

void check_normal_form(const std::string& path) {
  FUZZ_CHECK(!path.empty() && path.front() == '/');
  FUZZ_CHECK(path == "/" || path.back() != '/');
  FUZZ_CHECK(path.find("//") == std::string::npos);
  FUZZ_CHECK(path.find("/./") == std::string::npos && !path.ends_with("/."));
  FUZZ_CHECK(path.find("/../") == std::string::npos && !path.ends_with("/.."));
  FUZZ_CHECK(path.find('\0') == std::string::npos && path.find('\\') == std::string::npos);
  FUZZ_CHECK(path.size() <= rules::kMaxPathLength);
}

void check_resolve(std::string_view cwd_text, std::string_view argument) {
  std::string cwd;
  auto base = rules::resolve_path("/", cwd_text);
  if (auto* resolved = std::get_if<std::string>(&base)) cwd = *resolved;
  auto result = rules::resolve_path(cwd, argument);
  auto* path = std::get_if<std::string>(&result);
  if (path == nullptr) return;
  check_normal_form(*path);
  // Normal form is a fixed point.
  auto again = rules::resolve_path("/", *path);
  FUZZ_CHECK(std::holds_alternative<std::string>(again) && std::get<std::string>(again) == *path);
}

void check_glob(std::string_view pattern, std::string_view text) {
  std::string why;
  auto glob = rules::Glob::compile(pattern, &why);
  if (!glob) {
    FUZZ_CHECK(!why.empty());
    return;
  }
  (void)glob->matches(text);
  // A pattern without metacharacters matches exactly itself.
  if (pattern.find_first_of("*?[\\") == std::string_view::npos) {
    FUZZ_CHECK(glob->matches(pattern));
    FUZZ_CHECK(glob->matches(text) == (text == pattern));
  }
}

const std::vector<rules::Rule>& confined_rules() {
  static const std::vector<rules::Rule> rules = [] {
    rules::Rule rule;
    rule.name = "tree";
    rule.allow_paths.push_back(*rules::Glob::compile("/pub/**"));
    rule.deny_paths.push_back(*rules::Glob::compile("/pub/private/**"));
    return std::vector<rules::Rule>{rule};
  }();
  return rules;
}

void check_filter(std::string_view cwd_text, std::string_view line) {
  auto command = ftp::parse_command(line);
  if (!command) return;
  std::string cwd;
  auto base = rules::resolve_path("/", cwd_text);
  if (auto* resolved = std::get_if<std::string>(&base)) cwd = *resolved;
  pipeline::SessionView view;
  view.user = "u";
  view.class_name = "c";
  view.phase = pipeline::LoginPhase::kLoggedIn;
  view.working_directory = cwd;
  const pipeline::FilterVerdict verdict =
      pipeline::RulesFilter(confined_rules()).check(*command, policy::CommandKind::kOther, view);
  if (verdict.action == pipeline::FilterVerdict::Action::kDeny) {
    FUZZ_CHECK(!verdict.rule.empty());
    return;
  }
  FUZZ_CHECK(verdict.action == pipeline::FilterVerdict::Action::kContinue);
  // Passed: every verb is one the gateway understands, and any path it names is inside.
  FUZZ_CHECK(rules::is_rule_verb(command->verb) || pipeline::is_session_verb(command->verb));
  const rules::CommandAccess access = rules::command_access(command->verb, command->argument);
  if (!access.path) return;
  auto resolved = rules::resolve_path(cwd, *access.path);
  FUZZ_CHECK(std::holds_alternative<std::string>(resolved));
  std::string path = std::get<std::string>(resolved);
  if (access.access == rules::Access::kList) {
    const std::size_t slash = path.rfind('/');
    if (path.find_first_of("*?[", slash) != std::string::npos) path = slash == 0 ? "/" : path.substr(0, slash);
  }
  FUZZ_CHECK(path.find_first_of("*?[") == std::string::npos);
  FUZZ_CHECK(path == "/pub" || path.starts_with("/pub/"));
  FUZZ_CHECK(!(path == "/pub/private" || path.starts_with("/pub/private/")));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  const auto parts = fuzz::split(text, "\n");
  const std::string_view first = parts.empty() ? std::string_view() : parts[0];
  const std::string_view second = parts.size() > 1 ? parts[1] : std::string_view();
  switch (data[0] % 3) {
    case 0: check_resolve(first, second); break;
    case 1: check_glob(first, second); break;
    default: check_filter(first, second); break;
  }
  return 0;
}
