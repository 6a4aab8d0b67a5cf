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

// The token lives in the control session, which outlives every SSL it attaches to.
void attach_binding(SSL* ssl, const BindingToken* token);

// After the control handshake: tag the established session for session-ID resumption.
void bind_established_session(SSL* ssl);

enum class ResumeCheck { kOk, kNotResumed, kForeignSession };
ResumeCheck check_resumed_binding(SSL* data_ssl, const BindingToken& expected);
std::string_view describe(ResumeCheck result);
// The binding token of the session a data connection resumed (shared passive port: the
// token says which control session it belongs to); nullopt when it did not resume one
// of ours.
std::optional<BindingToken> resumed_token(SSL* data_ssl);

}  // namespace ftpsgate::tls
