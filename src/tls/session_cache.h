// A server session cache shared by several SSL_CTXs (passive.shared_port): OpenSSL's own
// cache belongs to one context, so after a reload a TLS 1.2 client resuming by session ID
// (no ticket) would not find its control session's session in the new context. Installed
// as the contexts' only session store (external cache, internal store off).
#pragma once

#include <openssl/ssl.h>

#include <cstddef>
#include <list>
#include <map>
#include <mutex>
#include <string>

namespace ftpsgate::tls {

class SessionCache {
 public:
  explicit SessionCache(std::size_t capacity) : capacity_(capacity) {}
  ~SessionCache();
  SessionCache(const SessionCache&) = delete;
  SessionCache& operator=(const SessionCache&) = delete;

  // `ctx` stores its new sessions here and finds them here. The cache must outlive it.
  void install(SSL_CTX* ctx);
  std::size_t size();

 private:
  static int on_new(SSL* ssl, SSL_SESSION* session);
  static SSL_SESSION* on_get(SSL* ssl, const unsigned char* id, int length, int* copy);
  static void on_remove(SSL_CTX* ctx, SSL_SESSION* session);
  static SessionCache* of(SSL_CTX* ctx);
  void erase_locked(const std::string& id);

  struct Entry {
    SSL_SESSION* session;  // holds a reference
    std::list<std::string>::iterator age;
  };
  std::size_t capacity_;
  std::mutex mutex_;
  std::map<std::string, Entry> sessions_;
  std::list<std::string> order_;  // oldest first, for eviction
};

}  // namespace ftpsgate::tls
