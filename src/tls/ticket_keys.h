// Session ticket keys from tls.ticket_key_file, shared by replicas so any of them can
// resume a session another one issued. The file holds one or more 80-byte keys in nginx's
// ssl_session_ticket_key layout (16-byte name, 32-byte HMAC-SHA256 key, 32-byte AES-256
// key; `openssl rand 80`): the first key encrypts new tickets, all of them decrypt, so a
// rotation prepends a new key and drops the oldest, then SIGHUP.
#pragma once

#include <openssl/ssl.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace ftpsgate::tls {

class TicketKeys {
 public:
  static constexpr std::size_t kKeySize = 80;

  // nullptr with `error` set when the file is unreadable or not a whole number of keys.
  static std::unique_ptr<TicketKeys> load(const std::string& path, std::string& error);
  // One random key, for this process only.
  static std::unique_ptr<TicketKeys> generate();
  ~TicketKeys();
  TicketKeys(const TicketKeys&) = delete;
  TicketKeys& operator=(const TicketKeys&) = delete;

  // Makes `ctx` encrypt and decrypt its tickets with these keys (which must outlive it).
  bool install(SSL_CTX* ctx);
  std::size_t size() const { return keys_.size(); }

 private:
  struct Key {
    std::array<unsigned char, 16> name;
    std::array<unsigned char, 32> hmac;
    std::array<unsigned char, 32> aes;
  };
  TicketKeys() = default;
  static int on_ticket(SSL* ssl, unsigned char key_name[16], unsigned char* iv, EVP_CIPHER_CTX* cipher,
                       EVP_MAC_CTX* mac, int encrypt);
  std::vector<Key> keys_;
};

}  // namespace ftpsgate::tls
