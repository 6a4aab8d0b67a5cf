#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "ftp/pwd_reply.h"
#include "pipeline/rules_filter.h"

using ftpsgate::ftp::Command;
using ftpsgate::policy::CommandKind;
using ftpsgate::policy::reason_name;
using ftpsgate::rules::Glob;
using ftpsgate::rules::preset_denied_verbs;
using ftpsgate::rules::Rule;
using namespace ftpsgate::pipeline;

namespace {

Rule confined(std::string name) {
  Rule r;
  r.name = std::move(name);
  r.classes = {"partners"};
  r.allow_paths.push_back(*Glob::compile("/pub/**"));
  r.deny_paths.push_back(*Glob::compile("/pub/secret/**"));
  r.deny_upload_names.push_back(*Glob::compile("*.exe"));
  return r;
}

SessionView logged_in(std::string_view user, std::string_view cwd, const std::vector<std::string>& groups = {}) {
  SessionView view;
  view.user = user;
  view.groups = groups;
  view.class_name = "partners";
  view.phase = LoginPhase::kLoggedIn;
  view.working_directory = cwd;
  return view;
}

FilterVerdict run(const std::vector<Rule>& rules, const Command& cmd, const SessionView& view) {
  return RulesFilter(rules).check(cmd, CommandKind::kOther, view);
}

std::string denial_reason(const FilterVerdict& verdict) {
  return verdict.action == FilterVerdict::Action::kDeny ? std::string(reason_name(verdict.reason)) : "pass";
}

}  // namespace

TEST_CASE("rules filter: path escapes are refused however they are spelled") {
  const std::vector<Rule> rules = {confined("tree")};
  const SessionView view = logged_in("alice", "/pub");
  const SessionView inside = logged_in("alice", "/pub/in");
  // Each of these would read or write outside /pub, or is a spelling the gateway cannot vouch for.
  const std::vector<std::pair<std::string, std::string>> escapes = {
      {"RETR", "../../etc/passwd"},      {"RETR", "/etc/passwd"},          {"RETR", "/pub/../etc/passwd"},
      {"RETR", "..//..//etc/passwd"},    {"RETR", "./../../etc/passwd"},   {"RETR", "/pub/./../etc/passwd"},
      {"RETR", "%2e%2e/%2e%2e/etc/passwd"}, {"RETR", "..%2f..%2fetc/passwd"}, {"RETR", "%2E%2E%2Fetc"},
      {"RETR", "..\\..\\etc\\passwd"},   {"RETR", "/pub\\..\\..\\etc"},    {"RETR", std::string("x\0/../../etc", 12)},
      {"RETR", "~root/.ssh/id_rsa"},     {"RETR", "~/x"},                   {"CWD", "/pub/../secret"},
      {"CWD", ".."},                     {"CWD", "../.."},                  {"CDUP", ""},
      {"RNTO", "/tmp/x"},                {"RNTO", "../../x"},              {"STOR", "../evil"},
      {"STOR", "/pub/../../evil"},       {"APPE", "/etc/cron.d/x"},        {"DELE", "/pub/secret/a"},
      {"DELE", "../secret/a"},           {"MKD", "/pub/secret/new"},       {"RMD", "/etc"},
      {"LIST", "-la /etc"},              {"NLST", "/"},                    {"MLSD", "../.."},
      {"SIZE", "/pub/secret/x"},         {"MDTM", "/etc/shadow"},          {"SITE", "CHMOD 777 /etc/passwd"},
      {"SITE", "CHMOD 777 ../../x"},     {"RETR", "/pub/*/../../etc/passwd"}, {"RETR", "/pub/secre?/a"},
      {"STAT", "/etc"},                  {"MLST", "/pub/secret"},          {"STOR", "in/payload.exe"},
  };
  CHECK(escapes.size() >= 30);
  for (const auto& [verb, argument] : escapes) {
    CAPTURE(verb);
    CAPTURE(argument);
    const FilterVerdict verdict = run(rules, {verb, argument}, view);
    CHECK(verdict.action == FilterVerdict::Action::kDeny);
    CHECK(verdict.rule.empty() == false);
  }
  // And inside the tree things pass.
  for (const auto& [verb, argument] : std::vector<std::pair<std::string, std::string>>{
           {"RETR", "a.txt"}, {"RETR", "/pub/in/a.txt"}, {"STOR", "b.bin"}, {"CWD", "/pub/in/sub"},
           {"LIST", "-la"}, {"LIST", "*.txt"}, {"NLST", "/pub/in/*.csv"}, {"DELE", "old"}, {"MKD", "new"},
           {"RNTO", "/pub/in/renamed"}, {"SITE", "CHMOD 644 a.txt"}, {"SITE", "HELP"}, {"TYPE", "I"}, {"PWD", ""}}) {
    CAPTURE(verb);
    CAPTURE(argument);
    CHECK(denial_reason(run(rules, {verb, argument}, inside)) == "pass");
  }
}

TEST_CASE("rules filter: the reasons say rule_denied or path_unresolvable and name the rule") {
  const std::vector<Rule> rules = {confined("tree")};
  const SessionView view = logged_in("alice", "/pub");
  const FilterVerdict outside = run(rules, {"RETR", "/etc/passwd"}, view);
  CHECK(denial_reason(outside) == "rule_denied");
  CHECK(outside.rule == "tree");
  CHECK(outside.message.find("/etc/passwd") != std::string::npos);
  const FilterVerdict encoded = run(rules, {"RETR", "%2e%2e/x"}, view);
  CHECK(denial_reason(encoded) == "path_unresolvable");
  CHECK(encoded.rule == kGatewayRule);
  // A relative path while the working directory is unknown cannot be checked.
  CHECK(denial_reason(run(rules, {"RETR", "a.txt"}, logged_in("alice", ""))) == "path_unresolvable");
  CHECK(denial_reason(run(rules, {"RETR", "/pub/a.txt"}, logged_in("alice", ""))) == "pass");
}

TEST_CASE("rules filter: unknown verbs, MDTM with a time and path-less SITE are refused while rules apply") {
  const std::vector<Rule> rules = {confined("tree")};
  const SessionView view = logged_in("alice", "/pub");
  CHECK(denial_reason(run(rules, {"MFMT", "20200101000000 /etc/passwd"}, view)) == "rule_denied");
  CHECK(denial_reason(run(rules, {"REIN", ""}, view)) == "rule_denied");
  CHECK(denial_reason(run(rules, {"MDTM", "20200101000000 a.txt"}, view)) == "rule_denied");
  CHECK(denial_reason(run(rules, {"MDTM", "a.txt"}, view)) == "pass");
  CHECK(denial_reason(run(rules, {"SITE", "SYMLINK /etc/passwd /pub/x"}, view)) == "path_unresolvable");
  CHECK(denial_reason(run(rules, {"SITE", "UMASK 022"}, view)) == "pass");
  CHECK(verb_label("MFMT") == "other");
  CHECK(verb_label("DELE") == "DELE");
  // No rule names this class: the filter says nothing, not even about unknown verbs.
  SessionView other = view;
  other.class_name = "internal";
  CHECK(denial_reason(run(rules, {"MFMT", "x"}, other)) == "pass");
  CHECK(denial_reason(run(rules, {"RETR", "/etc/passwd"}, other)) == "pass");
  // Nor before login.
  SessionView before = view;
  before.phase = LoginPhase::kLogin;
  CHECK(denial_reason(run(rules, {"RETR", "/etc/passwd"}, before)) == "pass");
}

TEST_CASE("rules filter: per-user and per-group verbs on one class, monitor mode and ALLO") {
  Rule no_dele;
  no_dele.name = "no-dele";
  no_dele.classes = {"partners"};
  no_dele.deny_verbs = {"DELE"};
  Rule ops;
  ops.name = "ops-may-delete";
  ops.groups = {"ops"};
  ops.allow_verbs = {"DELE"};
  Rule limit;
  limit.name = "limit";
  limit.classes = {"partners"};
  limit.max_upload_size = 1000;
  const std::vector<Rule> rules = {no_dele, ops, limit};
  const std::vector<std::string> ops_groups = {"ops"};
  CHECK(denial_reason(run(rules, {"DELE", "x"}, logged_in("alice", "/"))) == "rule_denied");
  CHECK(denial_reason(run(rules, {"DELE", "x"}, logged_in("bob", "/", ops_groups))) == "pass");
  CHECK(denial_reason(run(rules, {"ALLO", "1001"}, logged_in("alice", "/"))) == "upload_too_large");
  CHECK(denial_reason(run(rules, {"ALLO", "1000"}, logged_in("alice", "/"))) == "pass");

  Rule watch = no_dele;
  watch.enforce = false;
  Rule watch_limit = limit;
  watch_limit.enforce = false;
  const std::vector<Rule> monitoring = {watch, watch_limit};
  const FilterVerdict dele = run(monitoring, {"DELE", "x"}, logged_in("alice", "/"));
  CHECK(dele.action == FilterVerdict::Action::kContinue);
  REQUIRE(dele.monitored);
  CHECK(dele.monitored->rule == "no-dele");
  const FilterVerdict allo = run(monitoring, {"ALLO", "5000"}, logged_in("alice", "/"));
  CHECK(allo.action == FilterVerdict::Action::kContinue);
  REQUIRE(allo.monitored);
  CHECK(allo.monitored->rule == "limit");
  CHECK_FALSE(run(monitoring, {"RETR", "x"}, logged_in("alice", "/")).monitored);
}

TEST_CASE("a drop box: uploads pass, downloads and listings do not") {
  Rule drop;
  drop.name = "drop";
  drop.classes = {"partners"};
  drop.deny_verbs = preset_denied_verbs("upload_only");
  const std::vector<Rule> rules = {drop};
  const SessionView view = logged_in("alice", "/");
  CHECK(denial_reason(run(rules, {"STOR", "in.csv"}, view)) == "pass");
  for (const char* verb : {"RETR", "LIST", "NLST", "MLSD", "SIZE"}) {
    CAPTURE(verb);
    CHECK(denial_reason(run(rules, {verb, "in.csv"}, view)) == "rule_denied");
  }
}

TEST_CASE("PWD replies: quoted names, doubled quotes, and what is not one") {
  using ftpsgate::ftp::pwd_directory;
  using ftpsgate::ftp::Reply;
  CHECK(pwd_directory(Reply{257, {"257 \"/pub/in\" is the current directory"}}) == std::optional<std::string>("/pub/in"));
  CHECK(pwd_directory(Reply{257, {"257 \"/a \"\"b\"\"\""}}) == std::optional<std::string>("/a \"b\""));
  CHECK(pwd_directory(Reply{257, {"257 \"/\""}}) == std::optional<std::string>("/"));
  CHECK_FALSE(pwd_directory(Reply{257, {"257 /no/quotes"}}));
  CHECK_FALSE(pwd_directory(Reply{257, {"257 \"/unterminated"}}));
  CHECK_FALSE(pwd_directory(Reply{550, {"550 \"/x\""}}));
}
