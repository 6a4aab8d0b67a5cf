#include "policy/tls_policy.h"

namespace ftpsgate::policy {

namespace {

// Reply texts (SPEC §3).
constexpr std::string_view kControlRequiredText = "SSL/TLS required on the control channel";
constexpr std::string_view kProtClearRefusedText = "PROT C refused by policy";
constexpr std::string_view kProtPrivateRefusedText = "PROT P refused by policy";
constexpr std::string_view kDataEncryptedText = "Data connections must be encrypted";
constexpr std::string_view kCccNotProtectedText = "CCC: control channel is not protected";
constexpr std::string_view kCccNotAllowedText = "CCC not allowed by policy";

// What each tls_required value demands: the policy facts behind the predicates in the header.
struct Requirements {
  bool control_for_login;        // control channel protected for USER/PASS/ACCT
  bool control_after_login;      // ... and for everything after login (no CCC)
  bool data_protection;          // PROT P required
  bool forbids_data_protection;  // PROT P refused
  bool ccc;                      // CCC allowed once logged in
};

constexpr Requirements requirements(TlsRequired required) {
  // clang-format off
  switch (required) {
    //                                      login  after  data   !data  ccc
    case TlsRequired::kOn:          return {true,  true,  true,  false, false};
    case TlsRequired::kOff:         return {false, false, false, false, false};
    case TlsRequired::kCtrl:        return {true,  true,  false, false, false};
    case TlsRequired::kData:        return {false, false, true,  false, false};
    case TlsRequired::kNotData:     return {false, false, false, true,  false};
    case TlsRequired::kCtrlNotData: return {true,  true,  false, true,  false};
    // auth*: protected for login only, CCC may clear it later
    case TlsRequired::kAuth:        return {true,  false, false, false, true};
    case TlsRequired::kAuthData:    return {true,  false, true,  false, true};
    case TlsRequired::kAuthNotData: return {true,  false, false, true,  true};
  }
  // clang-format on
  // SECURITY: an out-of-range value fails closed: protection required everywhere, never
  // forbidden, no CCC.
  return {true, true, true, false, false};
}

constexpr Decision allow() { return Decision{}; }

constexpr Decision refuse(int code, std::string_view message, Refusal why) {
  return Decision{false, code, message, reason_name(why), why};
}

constexpr Decision control_required() {
  return refuse(550, kControlRequiredText, Refusal::kControlNotProtected);
}

// The data-channel rule for a transfer about to start with the current PROT level.
Decision check_data(TlsRequired required, const ChannelState& state) {
  // SECURITY: a clear data connection under a policy that requires protection would leak
  // file contents; refuse the transfer, not just PROT C (the default PROT is C).
  if (requires_data_protection(required) && !state.data_protected) {
    return refuse(522, kDataEncryptedText, Refusal::kDataNotProtected);
  }
  if (forbids_data_protection(required) && state.data_protected) {
    return refuse(534, kProtPrivateRefusedText, Refusal::kDataProtectionForbidden);
  }
  return allow();
}

}  // namespace

bool requires_control_for_login(TlsRequired required) { return requirements(required).control_for_login; }

bool requires_control_after_login(TlsRequired required) { return requirements(required).control_after_login; }

bool requires_data_protection(TlsRequired required) { return requirements(required).data_protection; }

bool forbids_data_protection(TlsRequired required) { return requirements(required).forbids_data_protection; }

bool allows_ccc(TlsRequired required) { return requirements(required).ccc; }

Decision check(TlsRequired required, CommandKind kind, const ChannelState& state) {
  switch (kind) {
    case CommandKind::kLogin:
      // SECURITY: credentials never cross a clear control channel when any control
      // protection is required (auth* included), even after CCC (a second USER).
      if (requires_control_for_login(required) && !state.control_protected) return control_required();
      return allow();

    case CommandKind::kProtClear:
      if (requires_data_protection(required)) {
        return refuse(534, kProtClearRefusedText, Refusal::kDataNotProtected);
      }
      return allow();

    case CommandKind::kProtPrivate:
      if (forbids_data_protection(required)) {
        return refuse(534, kProtPrivateRefusedText, Refusal::kDataProtectionForbidden);
      }
      return allow();

    case CommandKind::kCcc:
      if (!state.control_protected) return refuse(533, kCccNotProtectedText, Refusal::kCccNotProtected);
      // SECURITY: clearing the control channel is only possible where the policy protects
      // authentication alone, and only once it is over (no clear USER/PASS afterwards).
      if (!allows_ccc(required) || !state.logged_in) {
        return refuse(534, kCccNotAllowedText, Refusal::kCccNotAllowed);
      }
      return allow();

    case CommandKind::kDataTransfer:
      if (state.logged_in && requires_control_after_login(required) && !state.control_protected) {
        return control_required();
      }
      // Checked before login too: fail closed even though the session answers 530 there.
      return check_data(required, state);

    case CommandKind::kOther:
      // Before login the session itself refuses relayed commands (530).
      if (state.logged_in && requires_control_after_login(required) && !state.control_protected) {
        return control_required();
      }
      return allow();
  }
  return control_required();  // SECURITY: an unknown kind fails closed
}

}  // namespace ftpsgate::policy
