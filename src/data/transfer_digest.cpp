#include "data/transfer_digest.h"

namespace ftpsgate::data {

std::unique_ptr<TransferDigest> TransferDigest::create() {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) return nullptr;
  return std::unique_ptr<TransferDigest>(new TransferDigest(std::move(ctx)));
}

void TransferDigest::update(const void* data, std::size_t length) {
  if (length > 0) EVP_DigestUpdate(ctx_.get(), data, length);
}

std::string TransferDigest::hex() const {
  // Finalized on a copy, so a record written mid-transfer (the session ended) still has
  // the digest of what was relayed so far.
  MdCtxPtr copy(EVP_MD_CTX_new());
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (!copy || EVP_MD_CTX_copy_ex(copy.get(), ctx_.get()) != 1 || EVP_DigestFinal_ex(copy.get(), digest, &length) != 1) {
    return "";
  }
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) {
    out += kDigits[digest[i] >> 4];
    out += kDigits[digest[i] & 0x0f];
  }
  return out;
}

}  // namespace ftpsgate::data
