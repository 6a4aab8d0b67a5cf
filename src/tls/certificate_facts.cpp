#include "tls/certificate_facts.h"

#include <openssl/x509v3.h>

#include "tls/openssl_handles.h"

namespace ftpsgate::tls {

namespace {

// Values with embedded NULs (a classic CN spoofing trick) are dropped, not truncated.
std::optional<std::string> text_of(const ASN1_STRING* value) {
  if (value == nullptr) return std::nullopt;
  unsigned char* utf8 = nullptr;
  const int length = ASN1_STRING_to_UTF8(&utf8, value);
  if (length < 0) return std::nullopt;
  std::string text(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(length));
  OPENSSL_free(utf8);
  if (text.find('\0') != std::string::npos) return std::nullopt;
  return text;
}

}  // namespace

std::optional<identity::CertificateFacts> verified_certificate_facts(SSL* ssl) {
  if (ssl == nullptr || SSL_get_verify_result(ssl) != X509_V_OK) return std::nullopt;
  X509Ptr peer(SSL_get1_peer_certificate(ssl));
  if (!peer) return std::nullopt;
  identity::CertificateFacts facts;
  const X509_NAME* subject = X509_get_subject_name(peer.get());
  if (BIO* bio = BIO_new(BIO_s_mem())) {
    X509_NAME_print_ex(bio, subject, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
    char* data = nullptr;
    const long size = BIO_get_mem_data(bio, &data);
    if (size > 0) facts.subject_dn.assign(data, static_cast<std::size_t>(size));
    BIO_free(bio);
  }
  for (int i = 0; i < X509_NAME_entry_count(subject); ++i) {
    const X509_NAME_ENTRY* entry = X509_NAME_get_entry(subject, i);
    const int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(entry));
    const char* name = nid == NID_undef ? nullptr : OBJ_nid2sn(nid);
    auto value = text_of(X509_NAME_ENTRY_get_data(entry));
    if (name != nullptr && value) facts.subject.emplace_back(name, std::move(*value));
  }
  auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(peer.get(), NID_subject_alt_name, nullptr, nullptr));
  if (names != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
      const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
      if (name->type == GEN_EMAIL) {
        if (auto v = text_of(name->d.rfc822Name)) facts.san_email.push_back(std::move(*v));
      } else if (name->type == GEN_DNS) {
        if (auto v = text_of(name->d.dNSName)) facts.san_dns.push_back(std::move(*v));
      } else if (name->type == GEN_URI) {
        if (auto v = text_of(name->d.uniformResourceIdentifier)) facts.san_uri.push_back(std::move(*v));
      }
    }
    GENERAL_NAMES_free(names);
  }
  return facts;
}

}  // namespace ftpsgate::tls
