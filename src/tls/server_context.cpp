#include "tls/client_fingerprint.h"
#include "tls/server_context.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstdio>

#include "tls/certificate_files.h"
#include "tls/self_signed.h"
#include "tls/session_binding.h"
#include "tls/tls_errors.h"

namespace ftpsgate::tls {

namespace {
constexpr const char* kDefaultCiphers = "ECDHE+AESGCM:ECDHE+CHACHA20";
}  // namespace

namespace {

int protocol_version(const std::string& name) {
  if (name == "TLSv1.2") return TLS1_2_VERSION;
  if (name == "TLSv1.3") return TLS1_3_VERSION;
  return 0;
}

std::string subject_of(X509* cert) {
  char buf[512] = {};
  X509_NAME_oneline(X509_get_subject_name(cert), buf, sizeof(buf));
  return buf;
}

time_t not_after_of(X509* cert) {
  const ASN1_TIME* t = X509_get0_notAfter(cert);
  tm out{};
  if (ASN1_TIME_to_tm(t, &out) != 1) return 0;
  return timegm(&out);
}

void add_certificate_info(std::vector<CertificateInfo>& infos, const std::string& name, X509* cert,
                          std::vector<std::string>& warnings) {
  CertificateInfo info{name, subject_of(cert), not_after_of(cert)};
  if (X509_cmp_current_time(X509_get0_notAfter(cert)) < 0) {
    warnings.push_back("certificate " + name + " (" + info.subject + ") has expired");
  }
  infos.push_back(std::move(info));
}

// TLSPassPhraseProvider: the first line of the command's standard output.
bool run_passphrase_command(const std::string& command, std::string& out, std::string& error) {
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) {
    error = "cannot run '" + command + "'";
    return false;
  }
  char buf[1024];
  const bool got = fgets(buf, sizeof(buf), pipe) != nullptr;
  const int status = pclose(pipe);
  if (!got || status != 0) {
    OPENSSL_cleanse(buf, sizeof(buf));
    error = "'" + command + "' failed or printed nothing";
    return false;
  }
  out.assign(buf);
  OPENSSL_cleanse(buf, sizeof(buf));
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return true;
}

bool use_pkcs12(SSL_CTX* ctx, const std::string& path, const std::string& passphrase, std::string& error) {
  BioPtr bio(BIO_new_file(path.c_str(), "rb"));
  PKCS12* p12 = bio ? d2i_PKCS12_bio(bio.get(), nullptr) : nullptr;
  if (p12 == nullptr) {
    error = "cannot read PKCS#12 file: " + drain_errors();
    return false;
  }
  EVP_PKEY* key = nullptr;
  X509* cert = nullptr;
  STACK_OF(X509)* chain = nullptr;
  const bool parsed = PKCS12_parse(p12, passphrase.c_str(), &key, &cert, &chain) == 1;
  PKCS12_free(p12);
  EvpPkeyPtr key_owner(key);
  X509Ptr cert_owner(cert);
  bool ok = parsed && cert != nullptr && key != nullptr && SSL_CTX_use_certificate(ctx, cert) == 1 &&
            SSL_CTX_use_PrivateKey(ctx, key) == 1 && SSL_CTX_check_private_key(ctx) == 1;
  for (int i = 0; ok && chain != nullptr && i < sk_X509_num(chain); ++i) {
    ok = SSL_CTX_add1_chain_cert(ctx, sk_X509_value(chain, i)) == 1;
  }
  sk_X509_pop_free(chain, X509_free);
  if (!ok) error = "cannot use PKCS#12 contents (wrong passphrase?): " + drain_errors_or("no key or certificate");
  return ok;
}

// Loads one certificate entry; returns its leaf (owned by ctx) or nullptr with `error`.
X509* load_entry(SSL_CTX* ctx, const CertificateConfig& entry, const std::string& passphrase, std::string& error) {
  if (!entry.pkcs12.empty()) {
    if (!use_pkcs12(ctx, entry.pkcs12, passphrase, error)) {
      error = entry.pkcs12 + ": " + error;
      return nullptr;
    }
    return SSL_CTX_get0_certificate(ctx);
  }
  if (!use_certificate_files(ctx, entry.cert, entry.key, error)) return nullptr;
  return SSL_CTX_get0_certificate(ctx);
}

// DNS names of the subjectAltName, or the common name when there are none; lower case.
std::vector<std::string> names_of(X509* cert) {
  std::vector<std::string> names;
  auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; sans != nullptr && i < sk_GENERAL_NAME_num(sans); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans, i);
    if (gn->type != GEN_DNS) continue;
    const auto* data = ASN1_STRING_get0_data(gn->d.dNSName);
    names.emplace_back(reinterpret_cast<const char*>(data), static_cast<size_t>(ASN1_STRING_length(gn->d.dNSName)));
  }
  GENERAL_NAMES_free(sans);
  if (names.empty()) {
    char cn[256] = {};
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn)) > 0) names.push_back(cn);
  }
  for (auto& n : names) {
    for (auto& ch : n) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  }
  std::sort(names.begin(), names.end());
  return names;
}

bool name_matches(const std::string& pattern, const std::string& host) {
  if (pattern == host) return true;
  // "*.example.com" covers exactly one label.
  if (pattern.size() > 2 && pattern.compare(0, 2, "*.") == 0) {
    const auto dot = host.find('.');
    return dot != std::string::npos && dot > 0 && host.compare(dot, std::string::npos, pattern, 1) == 0;
  }
  return false;
}

// TLSVerifyClient / TLSCACertificateFile / TLSCACertificatePath / TLSCARevocationFile.
void configure_client_verification(SSL_CTX* ctx, const TlsConfig& config, bool class_verifies,
                                   std::vector<std::string>& errors) {
  const std::string at = SourcePosition{}.prefix();
  if (!config.client_ca.empty() || !config.client_ca_dir.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, config.client_ca.empty() ? nullptr : config.client_ca.c_str(),
                                      config.client_ca_dir.empty() ? nullptr : config.client_ca_dir.c_str()) != 1) {
      errors.push_back(at + "cannot load client CA " + config.client_ca + config.client_ca_dir + ": " +
                       drain_errors());
    }
    if (!config.client_ca.empty()) {
      if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(config.client_ca.c_str())) {
        SSL_CTX_set_client_CA_list(ctx, names);
      }
    }
  }
  if (!config.crl.empty()) {
    X509_STORE* store = SSL_CTX_get_cert_store(ctx);
    if (X509_STORE_load_file(store, config.crl.c_str()) != 1) {
      errors.push_back(at + "cannot load CRL " + config.crl + ": " + drain_errors());
    } else {
      X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
    }
  }
  int mode = SSL_VERIFY_NONE;
  if (config.cert_request) {
    if (config.verify_client == VerifyClient::kOn) {
      mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    } else if (config.verify_client == VerifyClient::kOptional || class_verifies) {
      mode = SSL_VERIFY_PEER;
    }
  }
  SSL_CTX_set_verify(ctx, mode, nullptr);
  SSL_CTX_set_verify_depth(ctx, 9);
}

}  // namespace

int ServerContext::on_servername(SSL* ssl, int*, void* arg) {
  const auto* self = static_cast<const ServerContext*>(arg);
  const char* requested = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (requested == nullptr) return SSL_TLSEXT_ERR_OK;
  std::string host(requested);
  for (auto& ch : host) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  for (std::size_t i = 1; i < self->named_.size(); ++i) {
    for (const auto& pattern : self->named_[i].names) {
      if (name_matches(pattern, host)) {
        SSL_set_SSL_CTX(ssl, self->named_[i].ctx.get());
        return SSL_TLSEXT_ERR_OK;
      }
    }
  }
  return SSL_TLSEXT_ERR_OK;  // unknown or the default's names: the default certificate
}

std::unique_ptr<ServerContext> ServerContext::create(const TlsConfig& config, bool class_verifies,
                                                     std::vector<std::string>& errors,
                                                     std::vector<std::string>& warnings) {
  std::unique_ptr<ServerContext> out(new ServerContext());
  ERR_clear_error();
  out->ctx_.reset(SSL_CTX_new(TLS_server_method()));
  SSL_CTX* ctx = out->ctx_.get();
  if (ctx == nullptr) {
    errors.push_back(SourcePosition{}.prefix() + "cannot create TLS context: " + drain_errors());
    return nullptr;
  }

  int min_version = 0;
  int max_version = 0;
  for (const auto& name : config.protocols) {
    const int v = protocol_version(name);
    if (v == 0) {
      errors.push_back(SourcePosition{}.prefix() + "unsupported TLS protocol " + name);
      continue;
    }
    if (min_version == 0 || v < min_version) min_version = v;
    if (v > max_version) max_version = v;
  }
  // SECURITY: never below TLS 1.2, whatever the list says.
  SSL_CTX_set_min_proto_version(ctx, min_version == 0 ? TLS1_2_VERSION : min_version);
  SSL_CTX_set_max_proto_version(ctx, max_version == 0 ? TLS1_3_VERSION : max_version);

  uint64_t options = SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE;
  // SECURITY: client-initiated renegotiation is a DoS lever and a source of old CVEs.
  // OpenSSL 3 refuses client-initiated renegotiation unless explicitly allowed.
  options |= config.client_renegotiation ? SSL_OP_ALLOW_CLIENT_RENEGOTIATION : SSL_OP_NO_RENEGOTIATION;
  SSL_CTX_set_options(ctx, options);
  // Idle control connections keep no TLS buffers; data connections turn this off again.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  record_client_fingerprints(ctx);

  // SECURITY: "" means a secure built-in list (SPEC §2), not OpenSSL's DEFAULT: TLS 1.2 only
  // with forward secrecy and AEAD (no static RSA, no CBC: LUCKY13).
  const std::string ciphers = config.ciphers.empty() ? kDefaultCiphers : config.ciphers;
  if (SSL_CTX_set_cipher_list(ctx, ciphers.c_str()) != 1) {
    errors.push_back(SourcePosition{}.prefix() + "tls.ciphers '" + config.ciphers + "': " + drain_errors());
  }
  if (!config.ciphersuites.empty() && SSL_CTX_set_ciphersuites(ctx, config.ciphersuites.c_str()) != 1) {
    errors.push_back(SourcePosition{}.prefix() + "tls.ciphersuites '" + config.ciphersuites + "': " + drain_errors());
  }
  if (!config.groups.empty() && SSL_CTX_set1_groups_list(ctx, config.groups.c_str()) != 1) {
    errors.push_back(SourcePosition{}.prefix() + "tls.groups '" + config.groups + "': " + drain_errors());
  }

  if (config.certificates.empty()) {
    std::string error;
    auto generated = make_self_signed("ftpsgate", error);
    if (!generated || SSL_CTX_use_certificate(ctx, generated->cert.get()) != 1 ||
        SSL_CTX_use_PrivateKey(ctx, generated->key.get()) != 1) {
      errors.push_back(SourcePosition{}.prefix() + "cannot create the self-signed certificate: " + drain_errors_or(error));
    } else {
      add_certificate_info(out->certificates_, "self-signed", generated->cert.get(), warnings);
    }
  }
  std::string passphrase;
  if (!config.passphrase_command.empty()) {
    std::string error;
    if (!run_passphrase_command(config.passphrase_command, passphrase, error)) {
      errors.push_back(SourcePosition{}.prefix() + "tls.passphrase_command: " + error);
    }
    // PEM_def_callback uses this as the password for encrypted PEM keys.
    SSL_CTX_set_default_passwd_cb_userdata(ctx, passphrase.data());
  }
  // One SSL_CTX per set of names (SNI); RSA and ECDSA certificates for the same names
  // share one, where OpenSSL picks by the client's signature algorithms. The first set is
  // also the default context, served when SNI names nothing known.
  for (const auto& entry : config.certificates) {
    SslCtxPtr probe(SSL_CTX_new(TLS_server_method()));
    SSL_CTX_set_default_passwd_cb_userdata(probe.get(), passphrase.data());
    std::string error;
    X509* leaf = load_entry(probe.get(), entry, passphrase, error);
    if (leaf == nullptr) {
      errors.push_back(entry.position.prefix() + error);
      continue;
    }
    const std::string name = entry.pkcs12.empty() ? entry.cert : entry.pkcs12;
    add_certificate_info(out->certificates_, name, leaf, warnings);
    auto names = names_of(leaf);
    auto group = std::find_if(out->named_.begin(), out->named_.end(), [&](const auto& g) { return g.names == names; });
    if (group == out->named_.end()) {
      out->named_.push_back({std::move(names), std::move(probe), {}});
      group = std::prev(out->named_.end());
    } else {
      load_entry(group->ctx.get(), entry, passphrase, error);
    }
    group->entries.push_back(entry);
  }
  if (!out->named_.empty()) {
    for (const auto& entry : out->named_.front().entries) {
      std::string error;
      load_entry(ctx, entry, passphrase, error);
    }
    for (auto& group : out->named_) {
      SSL_CTX_set_default_passwd_cb_userdata(group.ctx.get(), nullptr);
      configure_client_verification(group.ctx.get(), config, class_verifies, errors);
      static const unsigned char kContext[] = "ftpsgate";
      SSL_CTX_set_session_id_context(group.ctx.get(), kContext, sizeof(kContext) - 1);
    }
    SSL_CTX_set_tlsext_servername_callback(ctx, &ServerContext::on_servername);
    SSL_CTX_set_tlsext_servername_arg(ctx, out.get());
  }
  // The passphrase is needed only while loading.
  SSL_CTX_set_default_passwd_cb_userdata(ctx, nullptr);
  OPENSSL_cleanse(passphrase.data(), passphrase.size());

  configure_client_verification(ctx, config, class_verifies, errors);

  static const unsigned char kSessionContext[] = "ftpsgate";
  SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof(kSessionContext) - 1);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
  SSL_CTX_set_timeout(ctx, static_cast<long>(config.session_timeout.count() / 1000));
  if (!install_binding_callbacks(ctx)) errors.push_back(SourcePosition{}.prefix() + "cannot install session ticket callbacks");
  if (!config.ticket_key_file.empty()) {
    std::string error;
    out->ticket_keys_ = TicketKeys::load(config.ticket_key_file, error);
    if (!out->ticket_keys_) {
      errors.push_back(config.ticket_key_file_position.prefix() + error);
    } else {
      bool installed = out->ticket_keys_->install(ctx);
      for (auto& group : out->named_) installed = installed && out->ticket_keys_->install(group.ctx.get());
      if (!installed) errors.push_back(config.ticket_key_file_position.prefix() + "cannot install the keys of ticket_key_file " + config.ticket_key_file);
    }
  }

  if (!errors.empty()) return nullptr;
  return out;
}

void ServerContext::share_session_cache(SessionCache& cache) {
  cache.install(ctx_.get());
  for (auto& group : named_) cache.install(group.ctx.get());
}

bool ServerContext::share_ticket_keys(TicketKeys& keys) {
  if (ticket_keys_) return false;
  bool installed = keys.install(ctx_.get());
  for (auto& group : named_) installed = installed && keys.install(group.ctx.get());
  return installed;
}

}  // namespace ftpsgate::tls
