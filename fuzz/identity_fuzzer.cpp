// libFuzzer target: the pure identity code of gateway-side login (src/identity): the users
// file parser, LDAP filter/DN escaping, and certificate-to-user mapping. The first byte
// picks what the rest of the input is.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ftp/command.h"
#include "fuzz_check.h"
#include "fuzz_lines.h"
#include "identity/certificate_rules.h"
#include "identity/hash_scheme.h"
#include "identity/ldap_escape.h"
#include "identity/users_file.h"

namespace {

using namespace ftpsgate::identity;

void check_users_file(std::string_view text) {
  const UsersFile file = parse_users_file(text);
  for (const auto& [name, entry] : file.users) {
    FUZZ_CHECK(name == entry.name && !name.empty() && ftpsgate::ftp::is_acceptable_user_name(name));
    FUZZ_CHECK(hash_scheme(entry.password_hash) != HashScheme::kUnsupported);
    FUZZ_CHECK(entry.groups.size() <= kMaxGroupsPerUser);
    FUZZ_CHECK(entry.line >= 1);
    FUZZ_CHECK(entry.backend_password_file.empty() || !entry.backend_user.empty());
  }
  for (const auto& error : file.errors) FUZZ_CHECK(error.line >= 1 && error.column >= 1 && !error.message.empty());
}

// Undoes RFC 4515 escapes; the escaped text must hold no bare special byte.
std::string unescape_filter(std::string_view escaped) {
  std::string out;
  for (std::size_t i = 0; i < escaped.size(); ++i) {
    const char ch = escaped[i];
    FUZZ_CHECK(ch != '*' && ch != '(' && ch != ')' && ch != '\0');
    if (ch != '\\') {
      out += ch;
      continue;
    }
    FUZZ_CHECK(i + 2 < escaped.size());
    const std::string hex(escaped.substr(i + 1, 2));
    out += static_cast<char>(std::stoi(hex, nullptr, 16));
    i += 2;
  }
  return out;
}

void check_escaping(std::string_view value) {
  FUZZ_CHECK(unescape_filter(ldap_escape_filter_value(value)) == value);
  const std::string dn = ldap_escape_dn_value(value);
  // A DN value never ends an RDN or starts another: every ',', '+', ';', '=' is escaped.
  for (std::size_t i = 0; i < dn.size(); ++i) {
    if (dn[i] == '\\') {
      ++i;
      continue;
    }
    FUZZ_CHECK(dn[i] != ',' && dn[i] != '+' && dn[i] != ';' && dn[i] != '=' && dn[i] != '\0');
  }
}

void check_certificate(const std::vector<std::string_view>& lines) {
  CertificateFacts facts;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::string value(lines[i]);
    switch (i % 5) {
      case 0: facts.subject_dn = value; break;
      case 1: facts.subject.emplace_back(i % 2 ? "CN" : "UID", value); break;
      case 2: facts.san_email.push_back(value); break;
      case 3: facts.san_dns.push_back(value); break;
      default: facts.san_uri.push_back(value); break;
    }
  }
  std::vector<CertificateRule> rules(5);
  rules[0].field = "san_email";
  rules[0].suffix = "@example.org";
  rules[1].field = "san_uri";
  rules[1].prefix = "urn:u:";
  rules[2].field = "dn";
  rules[2].equals = "CN=x";
  rules[2].user = "x";
  rules[3].field = "subject.UID";
  rules[3].user = "{value}";
  rules[4].field = "cn";
  rules[4].user = "c-{match}-{value}";
  if (auto match = map_certificate(rules, facts)) {
    FUZZ_CHECK(!match->user.empty() && ftpsgate::ftp::is_acceptable_user_name(match->user));
    FUZZ_CHECK(match->rule < rules.size());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0: check_users_file(rest); break;
    case 1: check_escaping(rest); break;
    default: check_certificate(ftpsgate::fuzz::split(rest, "\n")); break;
  }
  return 0;
}
