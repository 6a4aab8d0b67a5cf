// The config loader: tls: certificates, protocols, ciphers, client verification, tickets.
#include "config/loader.h"

namespace ftpsgate::config::detail {

void Loader::read_tls(MapReader& top) {
  MapReader map =
      section(top, "tls",
              {"certificates", "passphrase_command", "protocols", "ciphers", "ciphersuites", "groups", "client_ca",
               "client_ca_dir", "crl", "verify_client", "cert_request", "session_reuse_required", "session_timeout",
               "ticket_key_file", "client_renegotiation", "log"});
  TlsConfig& tls = config_.tls;
  if (const Field* field = map.get("certificates")) {
    const auto items = list_items(*field, "certificates", diag_);
    for (std::size_t i = 0; i < items.size(); ++i) {
      read_certificate(items[i], indexed("tls.certificates", i));
    }
  }
  map.read("passphrase_command", tls.passphrase_command);
  if (const Field* field = map.get("protocols")) read_protocols(*field);
  map.read("ciphers", tls.ciphers);
  map.read("ciphersuites", tls.ciphersuites);
  map.read("groups", tls.groups);
  map.read("client_ca", tls.client_ca);
  map.read("client_ca_dir", tls.client_ca_dir);
  map.read("crl", tls.crl);
  if (const Field* field = map.read_choice("verify_client", tls.verify_client, kVerifyClientChoices)) {
    verify_sites_.push_back({tls.verify_client, field->value_mark()});
  }
  map.read("cert_request", tls.cert_request);
  read_session_reuse(map, tls.session_reuse_required);
  Duration timeout = tls.session_timeout;
  if (const Field* field = map.read_duration("session_timeout", timeout)) {
    if (timeout > kMaxSessionTimeout) {
      diag_.error(field->value_mark(), "'session_timeout' must not exceed 7 days (168h), the TLS 1.3 ticket limit");
    } else {
      tls.session_timeout = timeout;
    }
  }
  if (const Field* field = map.read("ticket_key_file", tls.ticket_key_file)) {
    tls.ticket_key_file_position = {field->value_mark().line + 1, field->value_mark().column + 1};
  }
  map.read("client_renegotiation", tls.client_renegotiation);
  map.read("log", tls.log);
}

void Loader::read_certificate(const YAML::Node& node, const std::string& path) {
  MapReader map(node, node.Mark(), path, {"cert", "key", "pkcs12"}, diag_, MapReader::Empty::kError);
  if (!map.is_mapping()) return;
  CertificateConfig certificate;
  certificate.position = {node.Mark().line + 1, node.Mark().column + 1};
  // Each file reference: present, a string, and not empty.
  auto read_path = [&](std::string_view key, std::string& out) {
    const Field* field = map.read(key, out);
    if (field != nullptr && out.empty()) {
      diag_.error(field->value_mark(), "'" + std::string(key) + "' must not be empty");
    }
  };
  read_path("cert", certificate.cert);
  read_path("key", certificate.key);
  read_path("pkcs12", certificate.pkcs12);
  // The shape rules look at which keys are written, valid or not.
  const Field* cert = map.get("cert");
  const Field* key = map.get("key");
  const Field* pkcs12 = map.get("pkcs12");
  if (pkcs12 != nullptr && (cert != nullptr || key != nullptr)) {
    diag_.error(pkcs12->key_mark(), "use either 'cert' with 'key', or 'pkcs12', not both");
  } else if (key != nullptr && cert == nullptr) {
    diag_.error(key->key_mark(), "key without its certificate (add 'cert')");
  } else if (cert != nullptr && key == nullptr) {
    diag_.error(cert->key_mark(), "certificate without its key (add 'key')");
  } else if (cert == nullptr && pkcs12 == nullptr) {
    diag_.error(map.mark(), "certificate entry needs 'cert' and 'key', or 'pkcs12'");
  }
  config_.tls.certificates.push_back(std::move(certificate));
}

void Loader::read_protocols(const Field& field) {
  const auto items = list_items(field, "protocols", diag_);
  std::vector<std::string> protocols;
  bool ok = field.value.IsNull() || field.value.IsSequence();
  for (const auto& item : items) {
    auto text = scalar_text(item, item.Mark(), "a protocol", diag_);
    if (!text) {
      ok = false;
      continue;
    }
    std::string upper;
    for (char c : *text) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    std::string canonical;
    if (upper == "TLSV1.2") {
      canonical = "TLSv1.2";
    } else if (upper == "TLSV1.3") {
      canonical = "TLSv1.3";
    } else if (upper == "SSLV2" || upper == "SSLV3" || upper == "TLSV1" || upper == "TLSV1.0" || upper == "TLSV1.1") {
      diag_.error(item.Mark(), "protocol '" + *text + "' is insecure and not allowed (use TLSv1.2 and/or TLSv1.3)");
      ok = false;
      continue;
    } else {
      diag_.error(item.Mark(), "unknown protocol '" + *text + "' (use TLSv1.2 and/or TLSv1.3)");
      ok = false;
      continue;
    }
    if (std::find(protocols.begin(), protocols.end(), canonical) != protocols.end()) {
      diag_.error(item.Mark(), "duplicate protocol '" + canonical + "'");
      ok = false;
      continue;
    }
    protocols.push_back(canonical);
  }
  if (ok && protocols.empty()) {
    diag_.error(field.value_mark(), "'protocols' must list at least one of TLSv1.2, TLSv1.3");
    return;
  }
  if (ok) config_.tls.protocols = std::move(protocols);
}

}  // namespace ftpsgate::config::detail

namespace ftpsgate::config::detail {

const Field* Loader::read_session_reuse(MapReader& map, SessionReuse& out) {
  std::string text;
  const Field* field = map.read("session_reuse_required", text);
  if (field == nullptr) return nullptr;
  if (text == "audit") {
    out = SessionReuse::kAudit;
    return field;
  }
  if (auto value = parse_bool(text)) {
    out = *value ? SessionReuse::kRequired : SessionReuse::kOff;
    return field;
  }
  diag_.error(field->value_mark(), "'session_reuse_required' must be true, false or audit, not '" + text + "'");
  return nullptr;
}

}  // namespace ftpsgate::config::detail
