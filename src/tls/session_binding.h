// SECURITY: binds TLS sessions (TLS 1.2 session IDs and tickets, TLS 1.3 tickets) to the
// control connection that created them, so a protected data connection is accepted only
// when it resumes *this* client's control session — not any session, and not a session
// stolen from another client (data-port theft, RFC 4217 §10).
//
// Every session the gateway issues carries a random per-control-session token as ticket
// app data (SSL_SESSION_set1_ticket_appdata). For tickets it is set in the ticket
// generation callback, so it travels inside the encrypted ticket; for session-ID
// resumption it is set on the cached SSL_SESSION itself.
#pragma once

#include <openssl/ssl.h>

#include <array>
#include <optional>
#include <string_view>

namespace ftpsgate::tls {

using BindingToken = std::array<unsigned char, 16>;

BindingToken new_binding_token();

// Installs the ticket callbacks on a server context. Call once per SSL_CTX.
bool install_binding_callbacks(SSL_CTX* ctx);

// One control connection's binding: its own token, stamped on every session issued on
// it, and the token of the session it resumed, if it resumed one. A client that resumes
// its previous connection's session proves it holds that session's secret, so its data
// connections may resume either (curl and lftp cache sessions across connections).
struct ControlBinding {
  BindingToken own = new_binding_token();
  std::optional<BindingToken> resumed;
  bool accepts(const BindingToken& token) const { return token == own || (resumed && token == *resumed); }
};

// The binding lives in the control session, which outlives every SSL it attaches to.
void attach_control(SSL* ssl, ControlBinding* binding);

// SECURITY: data-connection ticket theft. A data connection never issues anything
// resumable: no TLS 1.2 ticket (empty NewSessionTicket), no TLS 1.3 ticket, no cached
// session id — a neighbour who takes a victim's passive port with a fresh handshake is
// refused and leaves with nothing that could pass as the victim's session later.
void mark_data_connection(SSL* ssl);
bool is_data_connection(SSL* ssl);

// After the control handshake: a fresh session is stamped with the connection's own
// token (session-ID resumption); a resumed one is left as it is (a cached session is
// shared with the connection that created it) and its token remembered as `resumed`.
void bind_control_handshake(SSL* ssl);

enum class ResumeCheck { kOk, kNotResumed, kForeignSession };
ResumeCheck check_resumed_binding(SSL* data_ssl, const ControlBinding& expected);
std::string_view describe(ResumeCheck result);
// The binding token of the session a data connection resumed (shared passive port: the
// token says which control session it belongs to); nullopt when it did not resume one
// of ours.
std::optional<BindingToken> resumed_token(SSL* data_ssl);

}  // namespace ftpsgate::tls
