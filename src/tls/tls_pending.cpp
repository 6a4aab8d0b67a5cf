#include "tls/tls_pending.h"

#include <algorithm>

#include "tls/tls_errors.h"

namespace ftpsgate::tls {

bool take_tls_pending(SSL* ssl, evbuffer* in) {
  if (ssl == nullptr || SSL_pending(ssl) <= 0) return false;
  char chunk[4096];
  const int n = SSL_read(ssl, chunk, std::min<int>(SSL_pending(ssl), static_cast<int>(sizeof(chunk))));
  if (n <= 0) {
    tls::drain_errors();
    return false;
  }
  evbuffer_add(in, chunk, static_cast<size_t>(n));
  return true;
}

}  // namespace ftpsgate::tls
