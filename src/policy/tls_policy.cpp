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

constexpr Decision allow() { return Decision{}; }

constexpr Decision refuse(int code, std::string_view message, std::string_view why) {
  return Decision{false, code, message, why};
}

constexpr Decision control_required() {
  return refuse(550, kControlRequiredText, reason::kControlNotProtected);
}

// The data-channel rule for a transfer about to start with the current PROT level.
Decision check_data(TlsRequired required, const ChannelState& state) {
  // SECURITY: a clear data connection under a policy that requires protection would leak
  // file contents; refuse the transfer, not just PROT C (the default PROT is C).
  if (requires_data_protection(required) && !state.data_protected) {
    return refuse(522, kDataEncryptedText, reason::kDataNotProtected);
  }
  if (forbids_data_protection(required) && state.data_protected) {
    return refuse(534, kProtPrivateRefusedText, reason::kDataProtectionForbidden);
  }
  return allow();
}

}  // namespace

bool requires_control_for_login(TlsRequired required) {
  switch (required) {
    case TlsRequired::kOn:
    case TlsRequired::kCtrl:
    case TlsRequired::kCtrlNotData:
    case TlsRequired::kAuth:
    case TlsRequired::kAuthData:
    case TlsRequired::kAuthNotData:
      return true;
    case TlsRequired::kOff:
    case TlsRequired::kData:
    case TlsRequired::kNotData:
      return false;
  }
  return true;  // SECURITY: an out-of-range value fails closed
}

bool requires_control_after_login(TlsRequired required) {
  switch (required) {
    case TlsRequired::kOn:
    case TlsRequired::kCtrl:
    case TlsRequired::kCtrlNotData:
      return true;
    case TlsRequired::kOff:
    case TlsRequired::kData:
    case TlsRequired::kNotData:
    case TlsRequired::kAuth:  // auth*: protected for login only, CCC may clear it later
    case TlsRequired::kAuthData:
    case TlsRequired::kAuthNotData:
      return false;
  }
  return true;
}

bool requires_data_protection(TlsRequired required) {
  switch (required) {
    case TlsRequired::kOn:
    case TlsRequired::kData:
    case TlsRequired::kAuthData:
      return true;
    case TlsRequired::kOff:
    case TlsRequired::kCtrl:
    case TlsRequired::kNotData:
    case TlsRequired::kCtrlNotData:
    case TlsRequired::kAuth:
    case TlsRequired::kAuthNotData:
      return false;
  }
  return true;
}

bool forbids_data_protection(TlsRequired required) {
  switch (required) {
    case TlsRequired::kNotData:
    case TlsRequired::kCtrlNotData:
    case TlsRequired::kAuthNotData:
      return true;
    case TlsRequired::kOn:
    case TlsRequired::kOff:
    case TlsRequired::kCtrl:
    case TlsRequired::kData:
    case TlsRequired::kAuth:
    case TlsRequired::kAuthData:
      return false;
  }
  return false;  // never forbid protection by accident
}

bool allows_ccc(TlsRequired required) {
  switch (required) {
    case TlsRequired::kAuth:
    case TlsRequired::kAuthData:
    case TlsRequired::kAuthNotData:
      return true;
    case TlsRequired::kOn:
    case TlsRequired::kOff:
    case TlsRequired::kCtrl:
    case TlsRequired::kData:
    case TlsRequired::kNotData:
    case TlsRequired::kCtrlNotData:
      return false;
  }
  return false;
}

Decision check(TlsRequired required, CommandKind kind, const ChannelState& state) {
  switch (kind) {
    case CommandKind::kLogin:
      // SECURITY: credentials never cross a clear control channel when any control
      // protection is required (auth* included), even after CCC (a second USER).
      if (requires_control_for_login(required) && !state.control_protected) return control_required();
      return allow();

    case CommandKind::kProtClear:
      if (requires_data_protection(required)) {
        return refuse(534, kProtClearRefusedText, reason::kDataNotProtected);
      }
      return allow();

    case CommandKind::kProtPrivate:
      if (forbids_data_protection(required)) {
        return refuse(534, kProtPrivateRefusedText, reason::kDataProtectionForbidden);
      }
      return allow();

    case CommandKind::kCcc:
      if (!state.control_protected) return refuse(533, kCccNotProtectedText, reason::kCccNotProtected);
      // SECURITY: clearing the control channel is only possible where the policy protects
      // authentication alone, and only once it is over (no clear USER/PASS afterwards).
      if (!allows_ccc(required) || !state.logged_in) {
        return refuse(534, kCccNotAllowedText, reason::kCccNotAllowed);
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
