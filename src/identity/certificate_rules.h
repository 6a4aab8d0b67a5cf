// The `certificate` provider's mapping from a verified client certificate to a user name
// (pure): ProFTPD's TLSUserName generalised to rules on the subject DN, its attributes and
// the subjectAltName entries. The facts are taken from the certificate by tls/ code.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ftpsgate::identity {

struct CertificateFacts {
  std::string subject_dn;  // RFC 2253 form, e.g. "CN=Alice,OU=Finance,O=Example"
  std::vector<std::pair<std::string, std::string>> subject;  // (short name, value): ("CN", "Alice"), ("UID", "alice")
  std::vector<std::string> san_email;
  std::vector<std::string> san_dns;
  std::vector<std::string> san_uri;
};

struct CertificateRule {
  // dn | cn | subject.<ATTR> (e.g. subject.UID, subject.emailAddress) | san_email | san_dns | san_uri
  std::string field;
  std::string equals;  // the whole value must be this ("" = any value)
  std::string prefix;  // the value must start with this ...
  std::string suffix;  // ... and end with this; {match} is what is between
  // The user name: literal text with {value} (the whole value) and {match} (the value
  // without prefix and suffix).
  std::string user = "{match}";
  std::vector<std::string> groups;  // given to the users this rule maps
};

struct CertificateMatch {
  std::string user;
  std::size_t rule = 0;  // index into the rules
  std::vector<std::string> groups;
};

bool is_certificate_field(std::string_view field);

// The first rule with a matching value names the user. SECURITY: when one rule's field has
// several values (two CNs, several SAN emails) that name different users, the certificate
// is ambiguous and maps nobody; a name that is empty or holds control bytes maps nobody.
std::optional<CertificateMatch> map_certificate(const std::vector<CertificateRule>& rules,
                                                const CertificateFacts& facts);

}  // namespace ftpsgate::identity
