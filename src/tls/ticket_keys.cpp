#include "tls/ticket_keys.h"

#include "tls/session_binding.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>

namespace ftpsgate::tls {

namespace {

int keys_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

bool set_hmac_key(EVP_MAC_CTX* mac, unsigned char* key, std::size_t length) {
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key, length),
                         OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0), OSSL_PARAM_construct_end()};
  return EVP_MAC_CTX_set_params(mac, params) == 1;
}

}  // namespace

std::unique_ptr<TicketKeys> TicketKeys::load(const std::string& path, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot read ticket_key_file " + path + ": " + std::strerror(errno);
    return nullptr;
  }
  std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.empty() || bytes.size() % kKeySize != 0) {
    error = "ticket_key_file " + path + " must hold one or more 80-byte keys (e.g. `openssl rand 80`), it has " +
            std::to_string(bytes.size()) + " bytes";
    OPENSSL_cleanse(bytes.data(), bytes.size());
    return nullptr;
  }
  std::unique_ptr<TicketKeys> keys(new TicketKeys());
  for (std::size_t at = 0; at < bytes.size(); at += kKeySize) {
    Key key;
    std::copy_n(bytes.begin() + static_cast<long>(at), 16, key.name.begin());
    std::copy_n(bytes.begin() + static_cast<long>(at + 16), 32, key.hmac.begin());
    std::copy_n(bytes.begin() + static_cast<long>(at + 48), 32, key.aes.begin());
    keys->keys_.push_back(key);
  }
  OPENSSL_cleanse(bytes.data(), bytes.size());
  return keys;
}

std::unique_ptr<TicketKeys> TicketKeys::generate() {
  std::unique_ptr<TicketKeys> keys(new TicketKeys());
  Key key;
  if (RAND_bytes(key.name.data(), static_cast<int>(key.name.size())) != 1 ||
      RAND_bytes(key.hmac.data(), static_cast<int>(key.hmac.size())) != 1 ||
      RAND_bytes(key.aes.data(), static_cast<int>(key.aes.size())) != 1) {
    return nullptr;
  }
  keys->keys_.push_back(key);
  OPENSSL_cleanse(&key, sizeof(key));
  return keys;
}

TicketKeys::~TicketKeys() {
  for (auto& key : keys_) OPENSSL_cleanse(&key, sizeof(key));
}

bool TicketKeys::install(SSL_CTX* ctx) {
  return SSL_CTX_set_ex_data(ctx, keys_index(), this) == 1 &&
         SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, &TicketKeys::on_ticket) == 1;
}

int TicketKeys::on_ticket(SSL* ssl, unsigned char key_name[16], unsigned char* iv, EVP_CIPHER_CTX* cipher,
                          EVP_MAC_CTX* mac, int encrypt) {
  auto* self = static_cast<TicketKeys*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), keys_index()));
  if (self == nullptr || self->keys_.empty()) return -1;
  if (encrypt == 1) {
    // SECURITY: 0 sends an empty ticket: nothing resumable leaves a data connection.
    if (is_data_connection(ssl)) return 0;
    Key& key = self->keys_.front();
    if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(EVP_aes_256_cbc())) != 1) return -1;
    std::memcpy(key_name, key.name.data(), key.name.size());
    if (EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key.aes.data(), iv) != 1) return -1;
    return set_hmac_key(mac, key.hmac.data(), key.hmac.size()) ? 1 : -1;
  }
  auto found = std::find_if(self->keys_.begin(), self->keys_.end(),
                            [&](const Key& key) { return std::memcmp(key.name.data(), key_name, 16) == 0; });
  if (found == self->keys_.end()) return 0;  // unknown key: a full handshake, a new ticket
  if (!set_hmac_key(mac, found->hmac.data(), found->hmac.size())) return -1;
  if (EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, found->aes.data(), iv) != 1) return -1;
  // An older key still decrypts, but the client gets a ticket under the current one.
  return found == self->keys_.begin() ? 1 : 2;
}

}  // namespace ftpsgate::tls
