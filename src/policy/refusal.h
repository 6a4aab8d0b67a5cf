// One vocabulary for refusals: the reason name a refusal carries in the reply log, the
// JSON log and ftpsgate_policy_denials_total{reason} alike, its usual reply, and whether
// it belongs in tls.log (ProFTPD's TLSLog).
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string_view>
#include <utility>

namespace ftpsgate::policy {

enum class Refusal {
  // tls_required (see tls_policy.h)
  kControlNotProtected,
  kDataNotProtected,
  kDataProtectionForbidden,
  kCccNotAllowed,
  kCccNotProtected,
  // TLS on the control channel
  kClientCertificateRequired,
  kStarttlsInjection,
  kHandshakeTimeout,
  // data connections
  kSessionReuseRequired,
  kSessionForeign,
  kDataForeignAddress,
  kSharedPortUnmatched,
  kProxyProtocol,
  // commands and login
  kLoginTimeout,
  kIdleTimeout,
  kLineTooLong,
  kBadUserName,
  kLoginBanned,
  kLoginUserLocked,
  kActiveDisabled,
  kBounceForeignAddress,
  kBounceLowPort,
  kUnknownHost,
  kHostNotAllowed,
  // gateway-side authentication (issue 14)
  kCertificateUserMismatch,
  kAuthUnavailable,
  kBackendLoginRefused,
  // command, path and upload rules (issue 15)
  kRuleDenied,
  kPathUnresolvable,
  kUploadTooLarge,
  // upload inspection (issue 16)
  kPartialUploadInspected,
  // admission (the acceptor, before a session exists)
  kNoClass,
  kMaxSessions,
  kMaxSessionsPerIp,
};

struct RefusalInfo {
  std::string_view name;  // the reason label and log value
  int code;               // the usual reply code (0: the connection closes without one)
  std::string_view text;  // the usual reply text (empty: composed by the caller, e.g. with the port)
  bool tls_event;         // logged to tls.log when one is configured
};

namespace detail {
// clang-format off
inline constexpr std::array<std::pair<Refusal, RefusalInfo>, 34> kRefusals = {{
    {Refusal::kControlNotProtected,       {"control_not_protected", 550, "SSL/TLS required on the control channel", false}},
    {Refusal::kDataNotProtected,          {"data_not_protected", 522, "Data connections must be encrypted", false}},
    {Refusal::kDataProtectionForbidden,   {"data_protection_forbidden", 534, "PROT P refused by policy", false}},
    {Refusal::kCccNotAllowed,             {"ccc_not_allowed", 534, "CCC not allowed by policy", false}},
    {Refusal::kCccNotProtected,           {"ccc_not_protected", 533, "CCC: control channel is not protected", false}},
    {Refusal::kClientCertificateRequired, {"client_certificate_required", 421, "A valid client certificate is required", true}},
    {Refusal::kStarttlsInjection,         {"starttls_injection", 0, "", true}},
    {Refusal::kHandshakeTimeout,          {"handshake_timeout", 0, "", false}},
    {Refusal::kSessionReuseRequired,      {"session_reuse_required", 425, "TLS session of the control connection not reused", true}},
    {Refusal::kSessionForeign,            {"session_foreign", 425, "TLS session of another control connection", true}},
    {Refusal::kDataForeignAddress,        {"data_foreign_address", 425, "connection from a foreign address", false}},
    {Refusal::kSharedPortUnmatched,       {"shared_port_unmatched", 0, "", false}},
    {Refusal::kProxyProtocol,             {"proxy_protocol", 421, "PROXY protocol header not accepted from your address", false}},
    {Refusal::kLoginTimeout,              {"login_timeout", 421, "Login timeout, closing control connection", false}},
    {Refusal::kIdleTimeout,               {"idle_timeout", 421, "Idle timeout, closing control connection", false}},
    {Refusal::kLineTooLong,               {"line_too_long", 500, "Command line too long", false}},
    {Refusal::kBadUserName,               {"bad_user_name", 501, "Invalid user name", false}},
    {Refusal::kLoginBanned,               {"login_banned", 421, "Too many failed logins, try again later", false}},
    {Refusal::kLoginUserLocked,           {"login_user_locked", 421, "Too many failed logins, try again later", false}},
    {Refusal::kActiveDisabled,            {"active_disabled", 502, "Active mode is disabled; use PASV or EPSV", false}},
    {Refusal::kBounceForeignAddress,      {"bounce_foreign_address", 504, "", false}},
    {Refusal::kBounceLowPort,             {"bounce_low_port", 504, "", false}},
    {Refusal::kUnknownHost,               {"unknown_host", 504, "Unknown host", false}},
    {Refusal::kHostNotAllowed,            {"host_not_allowed", 504, "Unknown host", false}},
    {Refusal::kCertificateUserMismatch,   {"certificate_user_mismatch", 530, "Login incorrect", true}},
    {Refusal::kAuthUnavailable,           {"auth_unavailable", 421, "Service not available, authentication unavailable", false}},
    {Refusal::kBackendLoginRefused,       {"backend_login_refused", 421, "Service not available, backend refused the login", false}},
    {Refusal::kRuleDenied,                {"rule_denied", 550, "Permission denied", false}},
    {Refusal::kPathUnresolvable,          {"path_unresolvable", 550, "Permission denied: path not accepted", false}},
    {Refusal::kUploadTooLarge,            {"upload_too_large", 552, "Requested file action aborted: upload size limit exceeded", false}},
    {Refusal::kPartialUploadInspected,    {"partial_upload_inspected", 550, "Appending or resuming uploads is not allowed where uploads are inspected", false}},
    {Refusal::kNoClass,                   {"no_class", 421, "No access for your address", false}},
    {Refusal::kMaxSessions,               {"max_sessions", 421, "Too many sessions, try again later", false}},
    {Refusal::kMaxSessionsPerIp,          {"max_sessions_per_ip", 421, "Too many sessions from your address", false}},
}};
// clang-format on

constexpr bool table_in_enum_order() {
  for (std::size_t i = 0; i < kRefusals.size(); ++i) {
    if (static_cast<std::size_t>(kRefusals[i].first) != i) return false;
  }
  return true;
}
static_assert(table_in_enum_order(), "kRefusals must list every Refusal in declaration order");
}  // namespace detail

constexpr const RefusalInfo& refusal_info(Refusal refusal) {
  return detail::kRefusals[static_cast<std::size_t>(refusal)].second;
}
constexpr std::string_view reason_name(Refusal refusal) { return refusal_info(refusal).name; }

constexpr std::optional<Refusal> refusal_named(std::string_view name) {
  for (const auto& [refusal, info] : detail::kRefusals) {
    if (info.name == name) return refusal;
  }
  return std::nullopt;
}

// Whether a reason name (from any source) is a TLS event; unknown names are not.
constexpr bool is_tls_reason(std::string_view name) {
  const auto refusal = refusal_named(name);
  return refusal && refusal_info(*refusal).tls_event;
}

}  // namespace ftpsgate::policy
