#include <doctest/doctest.h>

#include "identity/certificate_rules.h"

using ftpsgate::identity::CertificateFacts;
using ftpsgate::identity::CertificateRule;
using ftpsgate::identity::is_certificate_field;
using ftpsgate::identity::map_certificate;

namespace {

CertificateRule rule(std::string field, std::string user = "{match}") {
  CertificateRule r;
  r.field = std::move(field);
  r.user = std::move(user);
  return r;
}

}  // namespace

TEST_CASE("certificate fields") {
  for (const char* ok : {"dn", "cn", "san_email", "san_dns", "san_uri", "subject.UID", "subject.emailAddress"}) {
    CHECK(is_certificate_field(ok));
  }
  for (const char* bad : {"", "subject.", "email", "CN", "san"}) CHECK_FALSE(is_certificate_field(bad));
}

TEST_CASE("email suffix, URI prefix, exact DN and subject attribute rules map users") {
  CertificateRule email = rule("san_email");
  email.suffix = "@example.org";
  email.groups = {"staff"};
  CertificateRule uri = rule("san_uri");
  uri.prefix = "urn:ftpsgate:user:";
  CertificateRule dn = rule("dn", "ci");
  dn.equals = "CN=Build Bot,OU=CI,O=Example";
  const CertificateRule uid = rule("subject.UID", "{value}");
  const std::vector<CertificateRule> rules = {email, uri, dn, uid};

  CertificateFacts alice;
  alice.san_email = {"alice@example.org"};
  auto m = map_certificate(rules, alice);
  REQUIRE(m);
  CHECK(m->user == "alice");
  CHECK(m->rule == 0);
  CHECK(m->groups == std::vector<std::string>{"staff"});

  CertificateFacts carol;
  carol.san_uri = {"https://example.org/", "urn:ftpsgate:user:carol"};
  REQUIRE(map_certificate(rules, carol));
  CHECK(map_certificate(rules, carol)->user == "carol");

  CertificateFacts bot;
  bot.subject_dn = "CN=Build Bot,OU=CI,O=Example";
  CHECK(map_certificate(rules, bot)->user == "ci");
  bot.subject_dn = "CN=Build Bot,OU=CI,O=Example,C=XX";
  CHECK_FALSE(map_certificate(rules, bot));

  CertificateFacts dave;
  dave.subject = {{"CN", "Dave"}, {"UID", "dave"}};
  CHECK(map_certificate(rules, dave)->user == "dave");
}

TEST_CASE("lookalikes, ambiguity and unusable names map nobody") {
  CertificateRule email = rule("san_email");
  email.suffix = "@example.org";
  const std::vector<CertificateRule> rules = {email, rule("cn", "{value}")};

  CertificateFacts lookalike;
  lookalike.san_email = {"alice@example.org.evil.test", "alice@example.orgx"};
  CHECK_FALSE(map_certificate(rules, lookalike));

  CertificateFacts two;
  two.san_email = {"erin@example.org", "frank@example.org"};
  CHECK_FALSE(map_certificate(rules, two));  // SECURITY: two users from one rule
  two.san_email = {"erin@example.org", "erin@example.org"};
  CHECK(map_certificate(rules, two)->user == "erin");  // the same user twice is fine

  CertificateFacts only_suffix;
  only_suffix.san_email = {"@example.org"};
  CHECK_FALSE(map_certificate(rules, only_suffix));  // an empty name

  CertificateFacts control;
  control.subject = {{"CN", "bad\x01name"}};
  CHECK_FALSE(map_certificate(rules, control));

  CertificateFacts two_cns;
  two_cns.subject = {{"CN", "alice"}, {"CN", "bob"}};
  CHECK_FALSE(map_certificate(rules, two_cns));
}

TEST_CASE("the first rule that matches decides") {
  const std::vector<CertificateRule> rules = {rule("cn", "{value}"), rule("subject.UID", "{value}")};
  CertificateFacts facts;
  facts.subject = {{"UID", "by-uid"}, {"CN", "by-cn"}};
  CHECK(map_certificate(rules, facts)->user == "by-cn");
}
