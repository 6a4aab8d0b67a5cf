#include <doctest/doctest.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "pipeline/filter_chain.h"
#include "pipeline/tls_required_filter.h"

using ftpsgate::TlsRequired;
using ftpsgate::ftp::Command;
using namespace ftpsgate::pipeline;
using ftpsgate::policy::CommandKind;
using ftpsgate::policy::reason_name;

namespace {

SessionView session(TlsRequired required, bool control_protected, bool logged_in, bool data_protected = false) {
  SessionView view;
  view.tls_required = required;
  view.channel = {control_protected, logged_in, data_protected};
  view.phase = logged_in ? LoginPhase::kLoggedIn : LoginPhase::kAwaitUser;
  return view;
}

FilterVerdict run_tls(const Command& cmd, const SessionView& view) {
  return TlsRequiredFilter().check(cmd, tls_command_kind(cmd), view);
}

// A filter that records what it saw and answers as told.
class ScriptedFilter final : public CommandFilter {
 public:
  ScriptedFilter(std::string name, FilterVerdict verdict, std::vector<std::string>& seen)
      : name_(std::move(name)), verdict_(std::move(verdict)), seen_(seen) {}
  std::string_view name() const override { return name_; }
  FilterVerdict check(const Command& cmd, CommandKind, const SessionView&) const override {
    seen_.push_back(name_ + ":" + cmd.verb + " " + cmd.argument);
    return verdict_;
  }

 private:
  std::string name_;
  FilterVerdict verdict_;
  std::vector<std::string>& seen_;
};

}  // namespace

TEST_CASE("tls_command_kind classifies what the TLS policy cares about") {
  CHECK(tls_command_kind({"USER", "alice"}) == CommandKind::kLogin);
  CHECK(tls_command_kind({"PASS", "secret"}) == CommandKind::kLogin);
  CHECK(tls_command_kind({"ACCT", "x"}) == CommandKind::kLogin);
  CHECK(tls_command_kind({"PROT", "C"}) == CommandKind::kProtClear);
  CHECK(tls_command_kind({"PROT", "c"}) == CommandKind::kProtClear);
  CHECK(tls_command_kind({"PROT", "P"}) == CommandKind::kProtPrivate);
  CHECK(tls_command_kind({"PROT", "S"}) == CommandKind::kOther);
  CHECK(tls_command_kind({"PROT", "CC"}) == CommandKind::kOther);
  CHECK(tls_command_kind({"CCC", ""}) == CommandKind::kCcc);
  for (const char* verb : {"LIST", "NLST", "MLSD", "RETR", "STOR", "APPE", "STOU"}) {
    CHECK(tls_command_kind({verb, "f"}) == CommandKind::kDataTransfer);
  }
  for (const char* verb : {"CWD", "SIZE", "NOOP", "PASV", "EPSV", "ABOR", "SITE", "MLST"}) {
    CHECK(tls_command_kind({verb, ""}) == CommandKind::kOther);
  }
}

TEST_CASE("tls_required filter: USER in clear is refused with 550 control_not_protected under tls_required on") {
  const FilterVerdict verdict = run_tls({"USER", "alice"}, session(TlsRequired::kOn, false, false));
  CHECK(verdict.action == FilterVerdict::Action::kDeny);
  CHECK(verdict.code == 550);
  CHECK(reason_name(verdict.reason) == "control_not_protected");
  CHECK(verdict.text == "SSL/TLS required on the control channel");
}

TEST_CASE("tls_required filter: USER over TLS passes under tls_required on") {
  CHECK(run_tls({"USER", "alice"}, session(TlsRequired::kOn, true, false)).action ==
        FilterVerdict::Action::kContinue);
}

TEST_CASE("tls_required filter: USER in clear passes under tls_required off and data") {
  CHECK(run_tls({"USER", "alice"}, session(TlsRequired::kOff, false, false)).action ==
        FilterVerdict::Action::kContinue);
  CHECK(run_tls({"USER", "alice"}, session(TlsRequired::kData, false, false)).action ==
        FilterVerdict::Action::kContinue);
}

TEST_CASE("tls_required filter: PROT C is refused with 534 under tls_required on") {
  const FilterVerdict verdict = run_tls({"PROT", "C"}, session(TlsRequired::kOn, true, true, true));
  CHECK(verdict.action == FilterVerdict::Action::kDeny);
  CHECK(verdict.code == 534);
  CHECK(reason_name(verdict.reason) == "data_not_protected");
}

TEST_CASE("tls_required filter: PROT P is refused with 534 under tls_required !data") {
  const FilterVerdict verdict = run_tls({"PROT", "P"}, session(TlsRequired::kNotData, true, true));
  CHECK(verdict.action == FilterVerdict::Action::kDeny);
  CHECK(reason_name(verdict.reason) == "data_protection_forbidden");
}

TEST_CASE("tls_required filter: RETR with PROT C is refused with 522 under tls_required data") {
  const FilterVerdict verdict = run_tls({"RETR", "f"}, session(TlsRequired::kData, false, true, false));
  CHECK(verdict.action == FilterVerdict::Action::kDeny);
  CHECK(verdict.code == 522);
  CHECK(reason_name(verdict.reason) == "data_not_protected");
  CHECK(run_tls({"RETR", "f"}, session(TlsRequired::kData, false, true, true)).action ==
        FilterVerdict::Action::kContinue);
}

TEST_CASE("tls_required filter: CCC only where the policy allows it and after login") {
  CHECK(run_tls({"CCC", ""}, session(TlsRequired::kAuth, true, true)).action == FilterVerdict::Action::kContinue);
  const FilterVerdict before_login = run_tls({"CCC", ""}, session(TlsRequired::kAuth, true, false));
  CHECK(before_login.action == FilterVerdict::Action::kDeny);
  CHECK(reason_name(before_login.reason) == "ccc_not_allowed");
  const FilterVerdict strict = run_tls({"CCC", ""}, session(TlsRequired::kOn, true, true));
  CHECK(reason_name(strict.reason) == "ccc_not_allowed");
  const FilterVerdict clear = run_tls({"CCC", ""}, session(TlsRequired::kAuth, false, true));
  CHECK(clear.code == 533);
  CHECK(reason_name(clear.reason) == "ccc_not_protected");
}

TEST_CASE("tls_required filter: the dispatcher's kind decides, not the verb (commands between USER and PASS)") {
  // RETR before login is relayed as a plain command: the data rule does not apply.
  const SessionView view = session(TlsRequired::kData, false, false);
  CHECK(TlsRequiredFilter().check({"RETR", "f"}, CommandKind::kOther, view).action ==
        FilterVerdict::Action::kContinue);
  CHECK(TlsRequiredFilter().check({"RETR", "f"}, CommandKind::kDataTransfer, view).action ==
        FilterVerdict::Action::kDeny);
}

TEST_CASE("filter chain: an empty chain passes the command unchanged") {
  FilterChain chain;
  const FilterVerdict verdict = chain.run({"CWD", "/a"}, CommandKind::kOther, SessionView{});
  CHECK(verdict.action == FilterVerdict::Action::kContinue);
  CHECK(verdict.command.verb == "CWD");
  CHECK(verdict.command.argument == "/a");
}

TEST_CASE("filter chain: the first deny decides and later filters never see the command") {
  std::vector<std::string> seen;
  FilterChain chain;
  chain.add(std::make_unique<ScriptedFilter>("first", FilterVerdict::pass(), seen));
  chain.add(std::make_unique<ScriptedFilter>("second", FilterVerdict::deny(550, "No", ftpsgate::policy::Refusal::kActiveDisabled), seen));
  chain.add(std::make_unique<ScriptedFilter>("third", FilterVerdict::answer(200, "Yes"), seen));
  const FilterVerdict verdict = chain.run({"DELE", "f"}, CommandKind::kOther, SessionView{});
  CHECK(verdict.action == FilterVerdict::Action::kDeny);
  CHECK(verdict.code == 550);
  CHECK(reason_name(verdict.reason) == "active_disabled");
  CHECK(seen == std::vector<std::string>{"first:DELE f", "second:DELE f"});
}

TEST_CASE("filter chain: a local answer stops the chain") {
  std::vector<std::string> seen;
  FilterChain chain;
  chain.add(std::make_unique<ScriptedFilter>("answer", FilterVerdict::answer(211, "Local"), seen));
  chain.add(std::make_unique<ScriptedFilter>("never", FilterVerdict::deny(550, "No", ftpsgate::policy::Refusal::kActiveDisabled), seen));
  const FilterVerdict verdict = chain.run({"SITE", "HELP"}, CommandKind::kOther, SessionView{});
  CHECK(verdict.action == FilterVerdict::Action::kAnswer);
  CHECK(verdict.code == 211);
  CHECK(seen.size() == 1);
}

TEST_CASE("filter chain: a rewrite is what later filters and the handler see") {
  std::vector<std::string> seen;
  FilterChain chain;
  chain.add(std::make_unique<ScriptedFilter>("rewrite", FilterVerdict::rewrite({"CWD", "/jail/a"}), seen));
  chain.add(std::make_unique<ScriptedFilter>("after", FilterVerdict::pass(), seen));
  const FilterVerdict verdict = chain.run({"CWD", "a"}, CommandKind::kOther, SessionView{});
  CHECK(verdict.action == FilterVerdict::Action::kContinue);
  CHECK(verdict.command.argument == "/jail/a");
  CHECK(seen == std::vector<std::string>{"rewrite:CWD a", "after:CWD /jail/a"});
}

TEST_CASE("the default chain starts with tls_required and refuses a clear USER under tls_required on") {
  static const std::vector<ftpsgate::rules::Rule> no_rules;
  const FilterChain chain = default_filter_chain(no_rules);
  REQUIRE(chain.size() == 1);
  const FilterVerdict verdict =
      chain.run({"USER", "alice"}, CommandKind::kLogin, session(TlsRequired::kOn, false, false));
  CHECK(verdict.action == FilterVerdict::Action::kDeny);
  CHECK(reason_name(verdict.reason) == "control_not_protected");
}

TEST_CASE("a monitored denial travels with the command to the end of the chain; a later deny still decides") {
  std::vector<std::string> seen;
  FilterChain chain;
  chain.add(std::make_unique<ScriptedFilter>("watch", FilterVerdict::monitor("r1", "verb DELE denied"), seen));
  chain.add(std::make_unique<ScriptedFilter>("after", FilterVerdict::pass(), seen));
  const FilterVerdict passed = chain.run({"DELE", "a"}, CommandKind::kOther, SessionView{});
  CHECK(passed.action == FilterVerdict::Action::kContinue);
  REQUIRE(passed.monitored);
  CHECK(passed.monitored->rule == "r1");
  CHECK(seen.size() == 2);
  FilterChain denying;
  denying.add(std::make_unique<ScriptedFilter>("watch", FilterVerdict::monitor("r1", "m"), seen));
  denying.add(std::make_unique<ScriptedFilter>(
      "deny", FilterVerdict::deny(550, "no", ftpsgate::policy::Refusal::kRuleDenied), seen));
  CHECK(denying.run({"DELE", "a"}, CommandKind::kOther, SessionView{}).action == FilterVerdict::Action::kDeny);
}

TEST_CASE("refusal vocabulary: names are unique, round-trip, and the TLS events are the TLS-log ones") {
  using ftpsgate::policy::Refusal;
  using ftpsgate::policy::refusal_info;
  using ftpsgate::policy::refusal_named;
  std::set<std::string_view> names;
  for (int i = 0; i <= static_cast<int>(Refusal::kMaxSessionsPerIp); ++i) {
    const auto refusal = static_cast<Refusal>(i);
    const auto& info = refusal_info(refusal);
    CHECK(names.insert(info.name).second);
    CHECK(refusal_named(info.name) == refusal);
  }
  CHECK_FALSE(refusal_named("no_such_reason").has_value());
  CHECK(ftpsgate::policy::is_tls_reason("starttls_injection"));
  CHECK(ftpsgate::policy::is_tls_reason("session_reuse_required"));
  CHECK(ftpsgate::policy::is_tls_reason("session_foreign"));
  CHECK(ftpsgate::policy::is_tls_reason("client_certificate_required"));
  CHECK_FALSE(ftpsgate::policy::is_tls_reason("control_not_protected"));
  CHECK_FALSE(ftpsgate::policy::is_tls_reason("anything_else"));
  CHECK(refusal_info(Refusal::kLineTooLong).code == 500);
}
