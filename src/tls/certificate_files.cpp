#include "tls/certificate_files.h"

#include <openssl/err.h>
#include <openssl/pem.h>

#include <memory>
#include <string_view>

#include "tls/openssl_handles.h"
#include "tls/tls_errors.h"

namespace ftpsgate::tls {

namespace {

struct InfoStackFree {
  void operator()(STACK_OF(X509_INFO) * infos) const { sk_X509_INFO_pop_free(infos, X509_INFO_free); }
};
using InfoStack = std::unique_ptr<STACK_OF(X509_INFO), InfoStackFree>;

// An encrypted key fails to load instead of prompting on a terminal.
int no_passphrase(char*, int, int, void*) { return 0; }

void check_pair(const std::string& cert, const std::string& key, const SourcePosition& at,
                std::vector<std::string>& errors) {
  ERR_clear_error();
  SslCtxPtr ctx(SSL_CTX_new(TLS_method()));
  if (!ctx) {
    errors.push_back(at.prefix() + "cannot create TLS context: " + drain_errors());
    return;
  }
  SSL_CTX_set_default_passwd_cb(ctx.get(), no_passphrase);
  std::string error;
  if (!use_certificate_files(ctx.get(), cert, key, error)) errors.push_back(at.prefix() + error);
}

// A PEM file holding at least one certificate (a CA) or CRL; "what" names it in the message.
void check_pem(const std::string& path, bool crl, std::string_view what, const SourcePosition& at,
               std::vector<std::string>& errors) {
  ERR_clear_error();
  BioPtr bio(BIO_new_file(path.c_str(), "r"));
  InfoStack infos(bio ? PEM_X509_INFO_read_bio(bio.get(), nullptr, no_passphrase, nullptr) : nullptr);
  int found = 0;
  for (int i = 0; infos && i < sk_X509_INFO_num(infos.get()); ++i) {
    const X509_INFO* info = sk_X509_INFO_value(infos.get(), i);
    found += (crl ? info->crl != nullptr : info->x509 != nullptr) ? 1 : 0;
  }
  if (found == 0) {
    errors.push_back(at.prefix() + "cannot load " + std::string(what) + " " + path + ": " +
                     drain_errors_or(crl ? "no CRL in the file" : "no certificate in the file"));
  }
}

}  // namespace

bool use_certificate_files(SSL_CTX* ctx, const std::string& cert, const std::string& key, std::string& error) {
  if (SSL_CTX_use_certificate_chain_file(ctx, cert.c_str()) != 1) {
    error = cert + ": cannot load certificate: " + drain_errors();
    return false;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1) {
    error = key + ": cannot load private key: " + drain_errors();
    return false;
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    drain_errors();
    error = key + ": private key does not match certificate " + cert;
    return false;
  }
  return true;
}

void check_agents_tls(const AgentsConfig& agents, std::vector<std::string>& errors) {
  check_pair(agents.certificate.cert, agents.certificate.key, agents.certificate.position, errors);
  check_pem(agents.client_ca, /*crl=*/false, "agents.tls.client_ca", agents.client_ca_position, errors);
  if (!agents.crl.empty()) check_pem(agents.crl, /*crl=*/true, "agents.tls.crl", agents.crl_position, errors);
}

void check_agent_tls(const AgentSection& agent, std::vector<std::string>& errors) {
  check_pem(agent.tls_ca, /*crl=*/false, "agent.tls.ca", agent.tls_ca_position, errors);
  check_pair(agent.tls_cert, agent.tls_key, agent.tls_position, errors);
}

}  // namespace ftpsgate::tls
