#include <doctest/doctest.h>

#include <string>

#include "identity/ldap_escape.h"

using ftpsgate::identity::ldap_escape_dn_value;
using ftpsgate::identity::ldap_escape_filter_value;
using ftpsgate::identity::replace_placeholder;
using namespace std::string_literals;

TEST_CASE("filter escaping turns an injection attempt into a literal value") {
  CHECK(ldap_escape_filter_value("*)(uid=*") == "\\2a\\29\\28uid=\\2a");
  CHECK(ldap_escape_filter_value("*") == "\\2a");
  CHECK(ldap_escape_filter_value("admin)(|(objectClass=*)") == "admin\\29\\28|\\28objectClass=\\2a\\29");
}

TEST_CASE("filter escaping covers NUL and backslash") {
  CHECK(ldap_escape_filter_value("a\0b"s) == "a\\00b");
  CHECK(ldap_escape_filter_value("\0"s) == "\\00");
  CHECK(ldap_escape_filter_value("a\\b") == "a\\5cb");
  CHECK(ldap_escape_filter_value("\\2a") == "\\5c2a");  // an escape sequence typed by the user stays literal
}

TEST_CASE("filter escaping leaves ordinary and UTF-8 values alone") {
  CHECK(ldap_escape_filter_value("") == "");
  CHECK(ldap_escape_filter_value("alice") == "alice");
  CHECK(ldap_escape_filter_value("o'neil,x = y+z #1") == "o'neil,x = y+z #1");
  CHECK(ldap_escape_filter_value("J\xc3\xbcrgen \xe6\x97\xa5\xe6\x9c\xac") == "J\xc3\xbcrgen \xe6\x97\xa5\xe6\x9c\xac");
  CHECK(ldap_escape_filter_value("\xff\x80") == "\xff\x80");  // bytes, not characters: invalid UTF-8 too
}

TEST_CASE("DN escaping escapes every RFC 4514 special character") {
  CHECK(ldap_escape_dn_value("o'neil,x") == "o'neil\\,x");
  CHECK(ldap_escape_dn_value(",+\"\\<>;=") == "\\,\\+\\\"\\\\\\<\\>\\;\\=");
  CHECK(ldap_escape_dn_value("alice,ou=admins") == "alice\\,ou\\=admins");
  CHECK(ldap_escape_dn_value("a+cn=b") == "a\\+cn\\=b");
  CHECK(ldap_escape_dn_value("a\0b"s) == "a\\00b");
}

TEST_CASE("DN escaping: '#' and space only at the ends that need it") {
  CHECK(ldap_escape_dn_value("#1") == "\\#1");
  CHECK(ldap_escape_dn_value("a#1") == "a#1");
  CHECK(ldap_escape_dn_value(" a") == "\\ a");
  CHECK(ldap_escape_dn_value("a ") == "a\\ ");
  CHECK(ldap_escape_dn_value("a b") == "a b");
  CHECK(ldap_escape_dn_value(" ") == "\\ ");
  CHECK(ldap_escape_dn_value("  ") == "\\ \\ ");
  CHECK(ldap_escape_dn_value("   ") == "\\  \\ ");
  CHECK(ldap_escape_dn_value("# ") == "\\#\\ ");
}

TEST_CASE("DN escaping leaves ordinary and UTF-8 values alone") {
  CHECK(ldap_escape_dn_value("") == "");
  CHECK(ldap_escape_dn_value("alice") == "alice");
  CHECK(ldap_escape_dn_value("*)(uid=*") == "*)(uid\\=*");
  CHECK(ldap_escape_dn_value("J\xc3\xbcrgen") == "J\xc3\xbcrgen");
}

TEST_CASE("replace_placeholder replaces every occurrence and nothing else") {
  CHECK(replace_placeholder("(|(member={dn})(memberUid={user})(uid={user}))", "user", "bob") ==
        "(|(member={dn})(memberUid=bob)(uid=bob))");
  CHECK(replace_placeholder("{user}{user}", "user", "x") == "xx");
  CHECK(replace_placeholder("uid={user},dc=org", "user", "") == "uid=,dc=org");
  CHECK(replace_placeholder("no placeholder", "user", "x") == "no placeholder");
  CHECK(replace_placeholder("{users} {User} {user", "user", "x") == "{users} {User} {user");
  CHECK(replace_placeholder("", "user", "x") == "");
}

TEST_CASE("replace_placeholder does not expand placeholders inside the value") {
  CHECK(replace_placeholder("a={user} b={dn}", "user", "{user}{dn}") == "a={user}{dn} b={dn}");
}
