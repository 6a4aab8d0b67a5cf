// The tls_required decision table (ProFTPD mod_tls TLSRequired semantics), pure.
#pragma once

#include <string_view>

#include "ftpsgate/tls_required.h"
#include "policy/refusal.h"

namespace ftpsgate::policy {

// What a client command means to the TLS policy.
enum class CommandKind {
  kLogin,         // USER, PASS, ACCT
  kProtClear,     // PROT C
  kProtPrivate,   // PROT P
  kCcc,           // CCC
  kDataTransfer,  // LIST NLST MLSD RETR STOR APPE STOU
  kOther,         // everything else relayed to the backend
};

struct ChannelState {
  bool control_protected = false;  // TLS active on the control channel now
  bool logged_in = false;          // backend accepted PASS
  bool data_protected = false;     // PROT P in force
};

struct Decision {
  bool allowed = true;
  int code = 0;                  // reply code when refused
  std::string_view message;      // reply text when refused (without code)
  std::string_view reason;       // policy_denials_total{reason} / log vocabulary
  Refusal refusal = Refusal::kControlNotProtected;  // the same, as the vocabulary's enum (when refused)
};

// Control rule first, then data rule:
//  kLogin        550 control_not_protected if requires_control_for_login and control clear.
//  kProtClear    534 "PROT C refused by policy" (data_not_protected) if data must be protected.
//  kProtPrivate  534 "PROT P refused by policy" (data_protection_forbidden) if forbidden.
//  kCcc          533 (ccc_not_protected) on a clear control channel; else 534
//                (ccc_not_allowed) unless allows_ccc and logged in.
//  kDataTransfer 550 as kOther; then 522 (data_not_protected) for clear data when data must
//                be protected, 534 "PROT P refused by policy" when protection is forbidden.
//  kOther        550 only after login under on/ctrl/ctrl+!data with a clear control channel.
Decision check(TlsRequired required, CommandKind kind, const ChannelState& state);

// Policy facts used elsewhere.
bool requires_control_for_login(TlsRequired required);
bool requires_control_after_login(TlsRequired required);
bool requires_data_protection(TlsRequired required);
bool forbids_data_protection(TlsRequired required);
bool allows_ccc(TlsRequired required);

// Reason names (one vocabulary for replies, logs and metrics: refusal.h).
namespace reason {
inline constexpr std::string_view kControlNotProtected = reason_name(Refusal::kControlNotProtected);
inline constexpr std::string_view kDataNotProtected = reason_name(Refusal::kDataNotProtected);
inline constexpr std::string_view kDataProtectionForbidden = reason_name(Refusal::kDataProtectionForbidden);
inline constexpr std::string_view kCccNotAllowed = reason_name(Refusal::kCccNotAllowed);
inline constexpr std::string_view kCccNotProtected = reason_name(Refusal::kCccNotProtected);
}  // namespace reason

}  // namespace ftpsgate::policy
