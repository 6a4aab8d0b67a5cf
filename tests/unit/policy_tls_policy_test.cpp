#include <doctest/doctest.h>

#include <array>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "policy/tls_policy.h"

using ftpsgate::TlsRequired;
using namespace ftpsgate::policy;

namespace {

constexpr std::array<TlsRequired, 9> kAllRequired = {
    TlsRequired::kOn,   TlsRequired::kOff,         TlsRequired::kCtrl,
    TlsRequired::kData, TlsRequired::kNotData,     TlsRequired::kCtrlNotData,
    TlsRequired::kAuth, TlsRequired::kAuthData,    TlsRequired::kAuthNotData,
};

constexpr std::array<CommandKind, 6> kAllKinds = {
    CommandKind::kLogin, CommandKind::kProtClear,    CommandKind::kProtPrivate,
    CommandKind::kCcc,   CommandKind::kDataTransfer, CommandKind::kOther,
};

// Local names so a failure reads like the config file (independent of src/config).
const char* name(TlsRequired r) {
  switch (r) {
    case TlsRequired::kOn: return "on";
    case TlsRequired::kOff: return "off";
    case TlsRequired::kCtrl: return "ctrl";
    case TlsRequired::kData: return "data";
    case TlsRequired::kNotData: return "!data";
    case TlsRequired::kCtrlNotData: return "ctrl+!data";
    case TlsRequired::kAuth: return "auth";
    case TlsRequired::kAuthData: return "auth+data";
    case TlsRequired::kAuthNotData: return "auth+!data";
  }
  return "?";
}

const char* name(CommandKind k) {
  switch (k) {
    case CommandKind::kLogin: return "login";
    case CommandKind::kProtClear: return "PROT C";
    case CommandKind::kProtPrivate: return "PROT P";
    case CommandKind::kCcc: return "CCC";
    case CommandKind::kDataTransfer: return "transfer";
    case CommandKind::kOther: return "other";
  }
  return "?";
}

struct Expected {
  bool allowed;
  int code;
  std::string_view message;
  std::string_view reason;
};

// The outcome tokens used in the table below.
Expected outcome(const std::string& token) {
  if (token == "ok") return {true, 0, "", ""};
  if (token == "550") return {false, 550, "SSL/TLS required on the control channel", "control_not_protected"};
  if (token == "522") return {false, 522, "Data connections must be encrypted", "data_not_protected"};
  if (token == "534C") return {false, 534, "PROT C refused by policy", "data_not_protected"};
  if (token == "534P") return {false, 534, "PROT P refused by policy", "data_protection_forbidden"};
  if (token == "533") return {false, 533, "CCC: control channel is not protected", "ccc_not_protected"};
  if (token == "534N") return {false, 534, "CCC not allowed by policy", "ccc_not_allowed"};
  FAIL("unknown token in the expected table: " << token);
  return {};
}

struct Row {
  TlsRequired required;
  CommandKind kind;
  // 8 outcomes. Left of '|': control channel in clear; right: control protected.
  // Within each half: (logged out, data clear) (logged out, PROT P) (logged in, data clear)
  // (logged in, PROT P).
  const char* cells;
};

using R = TlsRequired;
using K = CommandKind;

// Written out by hand from SPEC §3 and ProFTPD's TLSRequired documentation.
const std::vector<Row> kTable = {
    // on: control for login and later, data protected.
    {R::kOn, K::kLogin, "550 550 550 550 | ok ok ok ok"},
    {R::kOn, K::kProtClear, "534C 534C 534C 534C | 534C 534C 534C 534C"},
    {R::kOn, K::kProtPrivate, "ok ok ok ok | ok ok ok ok"},
    {R::kOn, K::kCcc, "533 533 533 533 | 534N 534N 534N 534N"},
    {R::kOn, K::kDataTransfer, "522 ok 550 550 | 522 ok 522 ok"},
    {R::kOn, K::kOther, "ok ok 550 550 | ok ok ok ok"},
    // off: nothing required.
    {R::kOff, K::kLogin, "ok ok ok ok | ok ok ok ok"},
    {R::kOff, K::kProtClear, "ok ok ok ok | ok ok ok ok"},
    {R::kOff, K::kProtPrivate, "ok ok ok ok | ok ok ok ok"},
    {R::kOff, K::kCcc, "533 533 533 533 | 534N 534N 534N 534N"},
    {R::kOff, K::kDataTransfer, "ok ok ok ok | ok ok ok ok"},
    {R::kOff, K::kOther, "ok ok ok ok | ok ok ok ok"},
    // ctrl: control for login and later, data free.
    {R::kCtrl, K::kLogin, "550 550 550 550 | ok ok ok ok"},
    {R::kCtrl, K::kProtClear, "ok ok ok ok | ok ok ok ok"},
    {R::kCtrl, K::kProtPrivate, "ok ok ok ok | ok ok ok ok"},
    {R::kCtrl, K::kCcc, "533 533 533 533 | 534N 534N 534N 534N"},
    {R::kCtrl, K::kDataTransfer, "ok ok 550 550 | ok ok ok ok"},
    {R::kCtrl, K::kOther, "ok ok 550 550 | ok ok ok ok"},
    // data: data protected, control free.
    {R::kData, K::kLogin, "ok ok ok ok | ok ok ok ok"},
    {R::kData, K::kProtClear, "534C 534C 534C 534C | 534C 534C 534C 534C"},
    {R::kData, K::kProtPrivate, "ok ok ok ok | ok ok ok ok"},
    {R::kData, K::kCcc, "533 533 533 533 | 534N 534N 534N 534N"},
    {R::kData, K::kDataTransfer, "522 ok 522 ok | 522 ok 522 ok"},
    {R::kData, K::kOther, "ok ok ok ok | ok ok ok ok"},
    // !data: data must not be protected, control free.
    {R::kNotData, K::kLogin, "ok ok ok ok | ok ok ok ok"},
    {R::kNotData, K::kProtClear, "ok ok ok ok | ok ok ok ok"},
    {R::kNotData, K::kProtPrivate, "534P 534P 534P 534P | 534P 534P 534P 534P"},
    {R::kNotData, K::kCcc, "533 533 533 533 | 534N 534N 534N 534N"},
    {R::kNotData, K::kDataTransfer, "ok 534P ok 534P | ok 534P ok 534P"},
    {R::kNotData, K::kOther, "ok ok ok ok | ok ok ok ok"},
    // ctrl+!data: control for login and later, data must not be protected.
    {R::kCtrlNotData, K::kLogin, "550 550 550 550 | ok ok ok ok"},
    {R::kCtrlNotData, K::kProtClear, "ok ok ok ok | ok ok ok ok"},
    {R::kCtrlNotData, K::kProtPrivate, "534P 534P 534P 534P | 534P 534P 534P 534P"},
    {R::kCtrlNotData, K::kCcc, "533 533 533 533 | 534N 534N 534N 534N"},
    {R::kCtrlNotData, K::kDataTransfer, "ok 534P 550 550 | ok 534P ok 534P"},
    {R::kCtrlNotData, K::kOther, "ok ok 550 550 | ok ok ok ok"},
    // auth: control for login only, CCC after login, data free.
    {R::kAuth, K::kLogin, "550 550 550 550 | ok ok ok ok"},
    {R::kAuth, K::kProtClear, "ok ok ok ok | ok ok ok ok"},
    {R::kAuth, K::kProtPrivate, "ok ok ok ok | ok ok ok ok"},
    {R::kAuth, K::kCcc, "533 533 533 533 | 534N 534N ok ok"},
    {R::kAuth, K::kDataTransfer, "ok ok ok ok | ok ok ok ok"},
    {R::kAuth, K::kOther, "ok ok ok ok | ok ok ok ok"},
    // auth+data: as auth, data protected.
    {R::kAuthData, K::kLogin, "550 550 550 550 | ok ok ok ok"},
    {R::kAuthData, K::kProtClear, "534C 534C 534C 534C | 534C 534C 534C 534C"},
    {R::kAuthData, K::kProtPrivate, "ok ok ok ok | ok ok ok ok"},
    {R::kAuthData, K::kCcc, "533 533 533 533 | 534N 534N ok ok"},
    {R::kAuthData, K::kDataTransfer, "522 ok 522 ok | 522 ok 522 ok"},
    {R::kAuthData, K::kOther, "ok ok ok ok | ok ok ok ok"},
    // auth+!data: as auth, data must not be protected.
    {R::kAuthNotData, K::kLogin, "550 550 550 550 | ok ok ok ok"},
    {R::kAuthNotData, K::kProtClear, "ok ok ok ok | ok ok ok ok"},
    {R::kAuthNotData, K::kProtPrivate, "534P 534P 534P 534P | 534P 534P 534P 534P"},
    {R::kAuthNotData, K::kCcc, "533 533 533 533 | 534N 534N ok ok"},
    {R::kAuthNotData, K::kDataTransfer, "ok 534P ok 534P | ok 534P ok 534P"},
    {R::kAuthNotData, K::kOther, "ok ok ok ok | ok ok ok ok"},
};

std::vector<std::string> tokens(const char* cells) {
  std::istringstream in(cells);
  std::vector<std::string> out;
  std::string token;
  while (in >> token) {
    if (token != "|") out.push_back(token);
  }
  return out;
}

Decision decide(TlsRequired r, CommandKind k, bool control, bool logged_in, bool data) {
  ChannelState state;
  state.control_protected = control;
  state.logged_in = logged_in;
  state.data_protected = data;
  return check(r, k, state);
}

}  // namespace

TEST_CASE("the tls_required table covers every value x command x channel state") {
  // The table itself is complete: each (tls_required, command kind) exactly once.
  std::set<std::pair<TlsRequired, CommandKind>> covered;
  for (const auto& row : kTable) CHECK(covered.insert({row.required, row.kind}).second);
  CHECK(covered.size() == kAllRequired.size() * kAllKinds.size());

  std::size_t checked = 0;
  for (const auto& row : kTable) {
    const auto cells = tokens(row.cells);
    REQUIRE(cells.size() == 8);
    for (std::size_t i = 0; i < cells.size(); ++i) {
      const bool control = i >= 4;
      const bool logged_in = (i % 4) >= 2;
      const bool data = (i % 2) == 1;
      const Expected want = outcome(cells[i]);
      const Decision got = decide(row.required, row.kind, control, logged_in, data);
      CAPTURE(name(row.required));
      CAPTURE(name(row.kind));
      CAPTURE(control);
      CAPTURE(logged_in);
      CAPTURE(data);
      CAPTURE(cells[i]);
      CHECK(got.allowed == want.allowed);
      if (!want.allowed) {
        CHECK(got.code == want.code);
        CHECK(got.message == want.message);
        CHECK(got.reason == want.reason);
      }
      ++checked;
    }
  }
  CHECK(checked == 9 * 6 * 8);
}

TEST_CASE("PROT C is refused under tls_required: on") {
  const Decision d = decide(R::kOn, K::kProtClear, true, true, true);
  CHECK_FALSE(d.allowed);
  CHECK(d.code == 534);
  CHECK(d.message == "PROT C refused by policy");
  CHECK(d.reason == reason::kDataNotProtected);
}

TEST_CASE("PROT P is refused under tls_required: ctrl+!data") {
  const Decision d = decide(R::kCtrlNotData, K::kProtPrivate, true, true, false);
  CHECK_FALSE(d.allowed);
  CHECK(d.code == 534);
  CHECK(d.message == "PROT P refused by policy");
  CHECK(d.reason == reason::kDataProtectionForbidden);
}

TEST_CASE("USER on a clear control channel is refused under tls_required: auth") {
  const Decision d = decide(R::kAuth, K::kLogin, false, false, false);
  CHECK_FALSE(d.allowed);
  CHECK(d.code == 550);
  CHECK(d.message == "SSL/TLS required on the control channel");
  CHECK(d.reason == reason::kControlNotProtected);
}

TEST_CASE("a second USER after CCC is refused under tls_required: auth+data") {
  CHECK_FALSE(decide(R::kAuthData, K::kLogin, false, true, true).allowed);
  CHECK(decide(R::kAuthData, K::kOther, false, true, true).allowed);
}

TEST_CASE("CCC is allowed under auth after login and refused before it") {
  CHECK(decide(R::kAuth, K::kCcc, true, true, false).allowed);
  const Decision before = decide(R::kAuth, K::kCcc, true, false, false);
  CHECK_FALSE(before.allowed);
  CHECK(before.code == 534);
  CHECK(before.reason == reason::kCccNotAllowed);
}

TEST_CASE("CCC on a clear control channel is 533 even where CCC is allowed") {
  const Decision d = decide(R::kAuth, K::kCcc, false, true, false);
  CHECK_FALSE(d.allowed);
  CHECK(d.code == 533);
  CHECK(d.reason == reason::kCccNotProtected);
}

TEST_CASE("a clear data transfer is refused with 522 under tls_required: data") {
  const Decision d = decide(R::kData, K::kDataTransfer, false, true, false);
  CHECK_FALSE(d.allowed);
  CHECK(d.code == 522);
  CHECK(d.message == "Data connections must be encrypted");
}

TEST_CASE("commands after login on a clear control channel are refused under tls_required: ctrl") {
  CHECK_FALSE(decide(R::kCtrl, K::kOther, false, true, false).allowed);
  CHECK(decide(R::kCtrl, K::kOther, false, false, false).allowed);  // the session answers 530 itself
  CHECK(decide(R::kCtrl, K::kOther, true, true, false).allowed);
}

TEST_CASE("policy predicates follow TLSRequired") {
  struct Facts {
    TlsRequired r;
    bool login, after_login, data_required, data_forbidden, ccc;
  };
  const std::array<Facts, 9> facts = {{
      {R::kOn, true, true, true, false, false},
      {R::kOff, false, false, false, false, false},
      {R::kCtrl, true, true, false, false, false},
      {R::kData, false, false, true, false, false},
      {R::kNotData, false, false, false, true, false},
      {R::kCtrlNotData, true, true, false, true, false},
      {R::kAuth, true, false, false, false, true},
      {R::kAuthData, true, false, true, false, true},
      {R::kAuthNotData, true, false, false, true, true},
  }};
  for (const auto& f : facts) {
    CAPTURE(name(f.r));
    CHECK(requires_control_for_login(f.r) == f.login);
    CHECK(requires_control_after_login(f.r) == f.after_login);
    CHECK(requires_data_protection(f.r) == f.data_required);
    CHECK(forbids_data_protection(f.r) == f.data_forbidden);
    CHECK(allows_ccc(f.r) == f.ccc);
  }
}

TEST_CASE("an out-of-range tls_required value fails closed") {
  const auto r = static_cast<TlsRequired>(99);
  CHECK(requires_control_for_login(r));
  CHECK(requires_control_after_login(r));
  CHECK(requires_data_protection(r));
  CHECK_FALSE(forbids_data_protection(r));
  CHECK_FALSE(allows_ccc(r));
}
