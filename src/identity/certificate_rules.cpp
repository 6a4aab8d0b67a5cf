#include "identity/certificate_rules.h"

#include "ftp/command.h"

namespace ftpsgate::identity {

namespace {

constexpr std::string_view kSubjectPrefix = "subject.";

std::string expand(std::string text, std::string_view name, std::string_view value) {
  const std::string token = "{" + std::string(name) + "}";
  for (std::size_t at = text.find(token); at != std::string::npos; at = text.find(token, at + value.size())) {
    text.replace(at, token.size(), value);
  }
  return text;
}

std::vector<std::string> values_of(const std::string& field, const CertificateFacts& facts) {
  if (field == "dn") return {facts.subject_dn};
  if (field == "san_email") return facts.san_email;
  if (field == "san_dns") return facts.san_dns;
  if (field == "san_uri") return facts.san_uri;
  const std::string attribute = field == "cn" ? "CN" : field.substr(kSubjectPrefix.size());
  std::vector<std::string> values;
  for (const auto& [name, value] : facts.subject) {
    if (name == attribute) values.push_back(value);
  }
  return values;
}

std::optional<std::string> user_for(const CertificateRule& rule, const std::string& value) {
  if (!rule.equals.empty() && value != rule.equals) return std::nullopt;
  if (value.size() < rule.prefix.size() + rule.suffix.size()) return std::nullopt;
  if (value.compare(0, rule.prefix.size(), rule.prefix) != 0) return std::nullopt;
  if (value.compare(value.size() - rule.suffix.size(), rule.suffix.size(), rule.suffix) != 0) return std::nullopt;
  const std::string match = value.substr(rule.prefix.size(), value.size() - rule.prefix.size() - rule.suffix.size());
  std::string user = expand(expand(rule.user, "value", value), "match", match);
  if (user.empty() || !ftp::is_acceptable_user_name(user)) return std::nullopt;
  return user;
}

}  // namespace

bool is_certificate_field(std::string_view field) {
  if (field == "dn" || field == "cn" || field == "san_email" || field == "san_dns" || field == "san_uri") return true;
  return field.size() > kSubjectPrefix.size() && field.substr(0, kSubjectPrefix.size()) == kSubjectPrefix;
}

std::optional<CertificateMatch> map_certificate(const std::vector<CertificateRule>& rules,
                                                const CertificateFacts& facts) {
  for (std::size_t i = 0; i < rules.size(); ++i) {
    std::optional<std::string> found;
    for (const auto& value : values_of(rules[i].field, facts)) {
      auto user = user_for(rules[i], value);
      if (!user) continue;
      if (found && *found != *user) return std::nullopt;
      found = std::move(user);
    }
    if (found) return CertificateMatch{std::move(*found), i, rules[i].groups};
  }
  return std::nullopt;
}

}  // namespace ftpsgate::identity
