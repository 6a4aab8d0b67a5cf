#include "tls/session_cache.h"

#include "tls/session_binding.h"

#include <ctime>
#include <iterator>

namespace ftpsgate::tls {

namespace {
int cache_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

std::string key_of(const SSL_SESSION* session) {
  unsigned int length = 0;
  const unsigned char* id = SSL_SESSION_get_id(session, &length);
  return std::string(reinterpret_cast<const char*>(id), length);
}
}  // namespace

SessionCache::~SessionCache() {
  for (auto& [id, entry] : sessions_) SSL_SESSION_free(entry.session);
}

void SessionCache::install(SSL_CTX* ctx) {
  // The only store: OpenSSL links cached sessions into a per-context list through the
  // session object itself, so one session in two contexts' internal caches corrupts both.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_set_ex_data(ctx, cache_index(), this);
  SSL_CTX_sess_set_new_cb(ctx, &SessionCache::on_new);
  SSL_CTX_sess_set_get_cb(ctx, &SessionCache::on_get);
  SSL_CTX_sess_set_remove_cb(ctx, &SessionCache::on_remove);
}

std::size_t SessionCache::size() {
  std::lock_guard lock(mutex_);
  return sessions_.size();
}

SessionCache* SessionCache::of(SSL_CTX* ctx) {
  return static_cast<SessionCache*>(SSL_CTX_get_ex_data(ctx, cache_index()));
}

int SessionCache::on_new(SSL* ssl, SSL_SESSION* session) {
  SessionCache* cache = of(SSL_get_SSL_CTX(ssl));
  if (cache == nullptr) return 0;
  // SECURITY: a session made on a data connection is never resumable (ticket theft).
  if (is_data_connection(ssl)) return 0;
  // TLS 1.3 tickets carry the whole session (stateless): nothing to keep for them.
  if (SSL_version(ssl) >= TLS1_3_VERSION && (SSL_get_options(ssl) & SSL_OP_NO_TICKET) == 0) return 0;
  const std::string id = key_of(session);
  if (id.empty()) return 0;
  std::lock_guard lock(cache->mutex_);
  cache->erase_locked(id);
  // Bounded: the oldest session goes first (its client does a full handshake next time).
  while (cache->sessions_.size() >= cache->capacity_ && !cache->order_.empty()) {
    const std::string oldest = cache->order_.front();
    cache->erase_locked(oldest);
  }
  cache->order_.push_back(id);
  cache->sessions_.emplace(id, Entry{session, std::prev(cache->order_.end())});
  return 1;  // we keep the reference OpenSSL handed us
}

SSL_SESSION* SessionCache::on_get(SSL* ssl, const unsigned char* id, int length, int* copy) {
  *copy = 0;
  SessionCache* cache = of(SSL_get_SSL_CTX(ssl));
  if (cache == nullptr || length <= 0) return nullptr;
  std::lock_guard lock(cache->mutex_);
  auto it = cache->sessions_.find(std::string(reinterpret_cast<const char*>(id), static_cast<std::size_t>(length)));
  if (it == cache->sessions_.end()) return nullptr;
  SSL_SESSION* session = it->second.session;
  if (SSL_SESSION_get_time(session) + SSL_SESSION_get_timeout(session) < static_cast<long>(std::time(nullptr))) {
    const std::string expired = it->first;
    cache->erase_locked(expired);
    return nullptr;
  }
  SSL_SESSION_up_ref(session);  // the caller's reference
  return session;
}

void SessionCache::on_remove(SSL_CTX* ctx, SSL_SESSION* session) {
  SessionCache* cache = of(ctx);
  if (cache == nullptr) return;
  std::lock_guard lock(cache->mutex_);
  cache->erase_locked(key_of(session));
}

void SessionCache::erase_locked(const std::string& id) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  SSL_SESSION_free(it->second.session);
  order_.erase(it->second.age);
  sessions_.erase(it);
}

}  // namespace ftpsgate::tls
