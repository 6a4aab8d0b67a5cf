#include "tls/session_binding.h"

#include <openssl/rand.h>

#include <cstring>

namespace ftpsgate::tls {

namespace {

int binding_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

const BindingToken* token_of(SSL* ssl) {
  return static_cast<const BindingToken*>(SSL_get_ex_data(ssl, binding_index()));
}

int generate_ticket(SSL* ssl, void*) {
  const BindingToken* token = token_of(ssl);
  SSL_SESSION* session = SSL_get0_session(ssl);
  if (token != nullptr && session != nullptr) {
    SSL_SESSION_set1_ticket_appdata(session, token->data(), token->size());
  }
  return 1;
}

SSL_TICKET_RETURN decrypt_ticket(SSL*, SSL_SESSION*, const unsigned char*, size_t,
                                 SSL_TICKET_STATUS status, void*) {
  // The binding itself is checked after the handshake, where the refusal can be
  // reported on the control channel with a precise reason.
  switch (status) {
    case SSL_TICKET_SUCCESS:
      return SSL_TICKET_RETURN_USE;
    case SSL_TICKET_SUCCESS_RENEW:
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

void attach_binding(SSL* ssl, const BindingToken* token) {
  SSL_set_ex_data(ssl, binding_index(), const_cast<BindingToken*>(token));
}

void bind_established_session(SSL* ssl) {
  const BindingToken* token = token_of(ssl);
  SSL_SESSION* session = SSL_get0_session(ssl);
  if (token != nullptr && session != nullptr) {
    SSL_SESSION_set1_ticket_appdata(session, token->data(), token->size());
  }
}

std::optional<BindingToken> resumed_token(SSL* data_ssl) {
  if (SSL_session_reused(data_ssl) != 1) return std::nullopt;
  SSL_SESSION* session = SSL_get0_session(data_ssl);
  void* data = nullptr;
  size_t length = 0;
  BindingToken token{};
  if (session == nullptr || SSL_SESSION_get0_ticket_appdata(session, &data, &length) != 1 || length != token.size()) {
    return std::nullopt;
  }
  std::memcpy(token.data(), data, length);
  return token;
}

ResumeCheck check_resumed_binding(SSL* data_ssl, const BindingToken& expected) {
  if (SSL_session_reused(data_ssl) != 1) return ResumeCheck::kNotResumed;
  const auto token = resumed_token(data_ssl);
  return token && *token == expected ? ResumeCheck::kOk : ResumeCheck::kForeignSession;
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
