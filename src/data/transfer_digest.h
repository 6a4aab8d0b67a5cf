// logging.transfer_sha256: the SHA-256 of a transfer's bytes, fed by the relay with
// exactly what it moves (no second read of the file).
#pragma once

#include <openssl/evp.h>

#include <cstddef>
#include <memory>
#include <string>

#include "tls/openssl_handles.h"

namespace ftpsgate::data {

class TransferDigest {
 public:
  // nullptr when OpenSSL offers no SHA-256 (a restricted provider configuration).
  static std::unique_ptr<TransferDigest> create();

  void update(const void* data, std::size_t length);
  // Lowercase hex (sha256sum's form) of the bytes so far; the digest can go on.
  // "" if OpenSSL fails.
  std::string hex() const;

 private:
  using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, tls::OpenSslDeleter<EVP_MD_CTX_free>>;
  explicit TransferDigest(MdCtxPtr ctx) : ctx_(std::move(ctx)) {}
  MdCtxPtr ctx_;
};

}  // namespace ftpsgate::data
