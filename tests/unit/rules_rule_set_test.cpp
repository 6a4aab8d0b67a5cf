#include <doctest/doctest.h>

#include "rules/rule_set.h"

using ftpsgate::rules::evaluate;
using ftpsgate::rules::Glob;
using ftpsgate::rules::preset_denied_verbs;
using ftpsgate::rules::Rule;
using ftpsgate::rules::RuleVerdict;
using ftpsgate::rules::Subject;
using ftpsgate::rules::upload_limits;
using Outcome = RuleVerdict::Outcome;

namespace {

std::vector<Glob> globs(std::initializer_list<const char*> patterns) {
  std::vector<Glob> out;
  for (const char* p : patterns) out.push_back(*Glob::compile(p));
  return out;
}

Rule rule(std::string name) {
  Rule r;
  r.name = std::move(name);
  return r;
}

const Subject kAlice{"alice", {"finance"}, "partners"};
const Subject kBob{"bob", {"ops"}, "partners"};

}  // namespace

TEST_CASE("nothing said is allowed") {
  CHECK(evaluate({}, kAlice, "DELE", "/x").outcome == Outcome::kAllow);
}

TEST_CASE("a read_only class; a user-level allow beats the class's deny") {
  Rule read_only = rule("partners-ro");
  read_only.classes = {"partners"};
  read_only.deny_verbs = preset_denied_verbs("read_only");
  Rule alice_deletes = rule("alice-may-delete");
  alice_deletes.users = {"alice"};
  alice_deletes.allow_verbs = {"DELE"};
  const std::vector<Rule> rules = {read_only, alice_deletes};
  CHECK(evaluate(rules, kAlice, "DELE", "/f").outcome == Outcome::kAllow);
  const auto bob = evaluate(rules, kBob, "DELE", "/f");
  CHECK(bob.outcome == Outcome::kDeny);
  CHECK(bob.rule == "partners-ro");
  CHECK(bob.reason == "verb DELE denied");
  CHECK(evaluate(rules, kBob, "STOR", "/f").denied());
  CHECK(evaluate(rules, kBob, "RETR", "/f").outcome == Outcome::kAllow);
  CHECK(evaluate(rules, Subject{"carol", {}, "internal"}, "DELE", "/f").outcome == Outcome::kAllow);
}

TEST_CASE("deny beats allow at the same level") {
  Rule allow = rule("allow");
  allow.groups = {"finance"};
  allow.allow_verbs = {"DELE"};
  Rule deny = rule("deny");
  deny.groups = {"finance"};
  deny.deny_verbs = {"DELE"};
  CHECK(evaluate({allow, deny}, kAlice, "DELE", "/f").rule == "deny");
  CHECK(evaluate({deny, allow}, kAlice, "DELE", "/f").denied());
}

TEST_CASE("a drop box: upload yes, download and listing no") {
  Rule drop = rule("dropbox");
  drop.classes = {"partners"};
  drop.deny_verbs = preset_denied_verbs("upload_only");
  CHECK(evaluate({drop}, kBob, "STOR", "/in/a").outcome == Outcome::kAllow);
  CHECK(evaluate({drop}, kBob, "RETR", "/in/a").denied());
  CHECK(evaluate({drop}, kBob, "LIST", "/in").denied());
  CHECK(evaluate({drop}, kBob, "NLST", "/in").denied());
}

TEST_CASE("only: every other file-tree verb is denied, session verbs are not") {
  Rule only = rule("only-get");
  only.classes = {"partners"};
  only.only_verbs = {"RETR", "LIST", "CWD"};
  CHECK(evaluate({only}, kBob, "RETR", "/f").outcome == Outcome::kAllow);
  CHECK(evaluate({only}, kBob, "MKD", "/d").denied());
  CHECK(evaluate({only}, kBob, "NOOP", std::nullopt).outcome == Outcome::kAllow);
  CHECK(evaluate({only}, kBob, "PWD", std::nullopt).outcome == Outcome::kAllow);
}

TEST_CASE("paths: allow confines, deny carves out, the most specific level decides") {
  Rule tree = rule("pub-only");
  tree.classes = {"partners"};
  tree.allow_paths = globs({"/pub/**"});
  tree.deny_paths = globs({"/pub/secret/**"});
  Rule alice_home = rule("alice-home");
  alice_home.users = {"alice"};
  alice_home.allow_paths = globs({"/home/alice/**"});
  const std::vector<Rule> rules = {tree, alice_home};
  CHECK(evaluate(rules, kBob, "RETR", "/pub/a.txt").outcome == Outcome::kAllow);
  CHECK(evaluate(rules, kBob, "CWD", "/pub").outcome == Outcome::kAllow);
  const auto outside = evaluate(rules, kBob, "RETR", "/etc/passwd");
  CHECK(outside.denied());
  CHECK(outside.reason == "path /etc/passwd outside the allowed paths");
  CHECK(evaluate(rules, kBob, "RETR", "/pub/secret/k").reason == "path /pub/secret/k denied");
  CHECK(evaluate(rules, kAlice, "RETR", "/home/alice/x").outcome == Outcome::kAllow);
  CHECK(evaluate(rules, kAlice, "RETR", "/pub/a.txt").denied());  // her own level confines her
}

TEST_CASE("upload names and sizes") {
  Rule uploads = rule("no-exe");
  uploads.classes = {"partners"};
  uploads.deny_upload_names = globs({"*.exe", "*.[bB][aA][tT]"});
  uploads.max_upload_size = 1000;
  uploads.delete_partial = true;
  Rule big = rule("alice-big");
  big.users = {"alice"};
  big.max_upload_size = 5000;
  CHECK(evaluate({uploads}, kBob, "STOR", "/in/setup.exe").reason == "upload name setup.exe denied");
  CHECK(evaluate({uploads}, kBob, "STOR", "/in/RUN.BAT").denied());
  CHECK(evaluate({uploads}, kBob, "RETR", "/in/setup.exe").outcome == Outcome::kAllow);  // names: uploads only
  CHECK(evaluate({uploads}, kBob, "STOR", "/in/report.pdf").outcome == Outcome::kAllow);
  const auto bob = upload_limits({uploads, big}, kBob);
  CHECK(bob.max_size == 1000u);
  CHECK(bob.delete_partial);
  CHECK(upload_limits({uploads, big}, kAlice).max_size == 5000u);
  CHECK_FALSE(upload_limits({uploads}, Subject{"x", {}, "other"}).max_size);
}

TEST_CASE("the relay's cap: what max_size leaves after the file's existing bytes, none when only audited") {
  ftpsgate::rules::UploadLimits limits;
  CHECK_FALSE(limits.relay_limit().has_value());
  limits.max_size = 1000;
  limits.existing = 400;
  CHECK(limits.relay_limit() == 600u);
  limits.existing = 1400;
  CHECK(limits.relay_limit() == 0u);
  limits.enforce = false;
  CHECK_FALSE(limits.relay_limit().has_value());
}

Rule inspecting(const std::string& name, const std::string& scanner, bool uploads = true) {
  Rule r = rule(name);
  r.inspection = ftpsgate::inspection::InspectionPolicy{};
  r.inspection->scanner = scanner;
  r.inspection->uploads = uploads;
  return r;
}

TEST_CASE("inspection: the most specific level's rule that sets one decides, else none (the class's own)") {
  Rule by_class = inspecting("partners-scanned", "av");
  by_class.classes = {"partners"};
  Rule by_group = inspecting("ops-unscanned", "av", false);
  by_group.groups = {"ops"};
  Rule by_user = inspecting("bob-icap", "icap");
  by_user.users = {"bob"};
  Rule unrelated = rule("bob-read-only");
  unrelated.users = {"bob"};
  unrelated.deny_verbs = preset_denied_verbs("read_only");
  const std::vector<Rule> rules{by_class, by_group, by_user, unrelated};
  using ftpsgate::rules::inspection_rule;
  REQUIRE(inspection_rule(rules, kBob) != nullptr);
  CHECK(inspection_rule(rules, kBob)->name == "bob-icap");
  CHECK(inspection_rule(rules, Subject{"carol", {"ops"}, "partners"})->name == "ops-unscanned");
  CHECK(inspection_rule(rules, Subject{"dave", {}, "partners"})->name == "partners-scanned");
  CHECK(inspection_rule(rules, Subject{"erin", {}, "internet"}) == nullptr);
  CHECK(inspection_rule({unrelated}, kBob) == nullptr);
}

TEST_CASE("monitor mode decides the same but only reports") {
  Rule watch = rule("would-be-ro");
  watch.classes = {"partners"};
  watch.deny_verbs = preset_denied_verbs("read_only");
  watch.enforce = false;
  const auto verdict = evaluate({watch}, kBob, "DELE", "/f");
  CHECK(verdict.outcome == Outcome::kMonitor);
  CHECK_FALSE(verdict.denied());
  CHECK(verdict.rule == "would-be-ro");
  CHECK(evaluate({watch}, kBob, "RETR", "/f").outcome == Outcome::kAllow);
  // An enforcing denial at the same level still wins over the monitored one.
  Rule enforce = rule("enforced");
  enforce.classes = {"partners"};
  enforce.deny_verbs = {"DELE"};
  CHECK(evaluate({watch, enforce}, kBob, "DELE", "/f").outcome == Outcome::kDeny);
}
