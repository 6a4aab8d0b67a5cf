// libevent stops an SSL_read at the read watermark and leaves the rest of the record in
// OpenSSL, where no socket event announces it.
#pragma once

#include <event2/buffer.h>
#include <openssl/ssl.h>

namespace ftpsgate::tls {

// Moves up to one chunk of what OpenSSL holds for `ssl` (nullptr: nothing) into `in`.
bool take_tls_pending(SSL* ssl, evbuffer* in);

}  // namespace ftpsgate::tls
