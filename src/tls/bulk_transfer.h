// TLS settings for data connections, which carry bulk data.
#pragma once

#include <openssl/ssl.h>

#include <cstddef>

namespace ftpsgate::tls {

inline constexpr std::size_t kBulkReadBuffer = 64 * 1024;

// Keep buffers between records, and read ahead into a buffer of several records so one
// read syscall feeds several SSL_reads (the relay reads until OpenSSL wants more, so
// nothing stays stuck in that buffer).
inline void tune_for_bulk(SSL* ssl) {
  SSL_clear_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
  SSL_set_default_read_buffer_len(ssl, kBulkReadBuffer);
  SSL_set_read_ahead(ssl, 1);
}

}  // namespace ftpsgate::tls
