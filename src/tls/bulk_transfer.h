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
  // On a connection that already read (an agent link's lines), the one-record buffer
  // stays: each read syscall would still take one 16 KiB record. Drop it so the next read
  // allocates the bulk one; OpenSSL refuses (and keeps it) while it holds unread bytes.
  SSL_free_buffers(ssl);
}

}  // namespace ftpsgate::tls
