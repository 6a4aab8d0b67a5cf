#include "tls/session_binding.h"

#include <openssl/rand.h>

#include <cstring>

namespace ftpsgate::tls {

namespace {

int binding_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

int data_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

ControlBinding* control_of(SSL* ssl) { return static_cast<ControlBinding*>(SSL_get_ex_data(ssl, binding_index())); }

std::optional<BindingToken> token_in(SSL_SESSION* session) {
  void* data = nullptr;
  size_t length = 0;
  BindingToken token{};
  if (session == nullptr || SSL_SESSION_get0_ticket_appdata(session, &data, &length) != 1 || length != token.size()) {
    return std::nullopt;
  }
  std::memcpy(token.data(), data, length);
  return token;
}

void stamp(SSL_SESSION* session, const BindingToken& token) {
  if (session != nullptr) SSL_SESSION_set1_ticket_appdata(session, token.data(), token.size());
}

int generate_ticket(SSL* ssl, void*) {
  // Only control connections carry a binding; data connections issue no tickets at all.
  if (const ControlBinding* binding = control_of(ssl)) stamp(SSL_get0_session(ssl), binding->own);
  return 1;
}

SSL_TICKET_RETURN decrypt_ticket(SSL* ssl, SSL_SESSION* session, const unsigned char*, size_t,
                                 SSL_TICKET_STATUS status, void*) {
  // The binding itself is checked after the handshake, where the refusal can be
  // reported on the control channel with a precise reason.
  const bool data = is_data_connection(ssl);
  switch (status) {
    case SSL_TICKET_SUCCESS:
    case SSL_TICKET_SUCCESS_RENEW:
      if (data) return SSL_TICKET_RETURN_USE;
      if (ControlBinding* binding = control_of(ssl)) {
        // A resumed control connection gets a fresh ticket bound to itself (the one it
        // resumed stays valid for its data connections too).
        binding->resumed = token_in(session);
      }
      return SSL_TICKET_RETURN_USE_RENEW;
    case SSL_TICKET_EMPTY:
    case SSL_TICKET_NO_DECRYPT:
      return SSL_TICKET_RETURN_IGNORE_RENEW;
    default:
      return SSL_TICKET_RETURN_ABORT;
  }
}

}  // namespace

BindingToken new_binding_token() {
  BindingToken token{};
  RAND_bytes(token.data(), static_cast<int>(token.size()));
  return token;
}

bool install_binding_callbacks(SSL_CTX* ctx) {
  return SSL_CTX_set_session_ticket_cb(ctx, &generate_ticket, &decrypt_ticket, nullptr) == 1;
}

void attach_control(SSL* ssl, ControlBinding* binding) { SSL_set_ex_data(ssl, binding_index(), binding); }

void mark_data_connection(SSL* ssl) {
  static int marker = 0;
  SSL_set_ex_data(ssl, data_index(), &marker);
  SSL_set_num_tickets(ssl, 0);  // TLS 1.3: no tickets; TLS 1.2: see TicketKeys and SessionCache
}

bool is_data_connection(SSL* ssl) { return SSL_get_ex_data(ssl, data_index()) != nullptr; }

void bind_control_handshake(SSL* ssl) {
  ControlBinding* binding = control_of(ssl);
  if (binding == nullptr) return;
  SSL_SESSION* session = SSL_get0_session(ssl);
  if (SSL_session_reused(ssl) != 1) {
    binding->resumed.reset();  // a ticket was decrypted, yet the handshake was a full one
    stamp(session, binding->own);
    return;
  }
  // Session-ID resumption: the cached session still names the connection that made it.
  if (!binding->resumed) binding->resumed = token_in(session);
}

std::optional<BindingToken> resumed_token(SSL* data_ssl) {
  if (SSL_session_reused(data_ssl) != 1) return std::nullopt;
  return token_in(SSL_get0_session(data_ssl));
}

ResumeCheck check_resumed_binding(SSL* data_ssl, const ControlBinding& expected) {
  if (SSL_session_reused(data_ssl) != 1) return ResumeCheck::kNotResumed;
  const auto token = resumed_token(data_ssl);
  return token && expected.accepts(*token) ? ResumeCheck::kOk : ResumeCheck::kForeignSession;
}

std::string_view describe(ResumeCheck result) {
  switch (result) {
    case ResumeCheck::kOk:
      return "resumed the control session";
    case ResumeCheck::kNotResumed:
      return "client did not reuse SSL session, rejecting data connection (see the session_reuse_required option)";
    case ResumeCheck::kForeignSession:
      return "data connection resumed a TLS session of another control connection, rejecting data connection";
  }
  return "";
}

}  // namespace ftpsgate::tls
