#include <doctest/doctest.h>

#include "identity/hash_scheme.h"
#include "identity/users_file.h"

using ftpsgate::identity::hash_scheme;
using ftpsgate::identity::HashScheme;
using ftpsgate::identity::parse_users_file;

namespace {
const char* const kYescrypt = "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$U4SOHmDd8SvW5vCUKSMR6N835VPwFAtgYNhQ9mFFeL5";
const char* const kBcrypt = "$2y$05$WjV0Sx4C8bZ8m3m2n8xRgu0uD9n1K5y7p8Xv8t6mS5w0J3y6b2h7e";
}  // namespace

TEST_CASE("hash schemes are told by their prefix; weak and locked entries are unsupported") {
  CHECK(hash_scheme(kYescrypt) == HashScheme::kYescrypt);
  CHECK(hash_scheme("$2b$12$x") == HashScheme::kBcrypt);
  CHECK(hash_scheme(kBcrypt) == HashScheme::kBcrypt);
  CHECK(hash_scheme("$6$salt$x") == HashScheme::kSha512Crypt);
  CHECK(hash_scheme("$5$salt$x") == HashScheme::kSha256Crypt);
  for (const char* weak : {"$1$md5$x", "abDESxyz12345", "plain", "*", "!", "!$y$j9T$x", ""}) {
    CHECK(hash_scheme(weak) == HashScheme::kUnsupported);
  }
}

TEST_CASE("htpasswd, shadow and ftpsgate lines parse; comments and blank lines are skipped") {
  const std::string text = std::string("# comment\n\n") +              //
                           "alice:" + kYescrypt + "\n" +                  // htpasswd
                           "bob:" + kBcrypt + ":19000:0:99999:7:::\r\n" +  // /etc/shadow, CRLF
                           "carol:$6$s$h:finance,ops:backend=b2;backend_user=svc;backend_password_file=/run/s;"
                           "tls_required=on\n";
  const auto file = parse_users_file(text);
  REQUIRE(file.errors.empty());
  REQUIRE(file.users.size() == 3);
  CHECK(file.users.at("alice").password_hash == kYescrypt);
  CHECK(file.users.at("alice").line == 3);
  CHECK(file.users.at("bob").password_hash == kBcrypt);
  CHECK(file.users.at("bob").groups.empty());
  const auto& carol = file.users.at("carol");
  CHECK(carol.groups == std::vector<std::string>{"finance", "ops"});
  CHECK(carol.backend == "b2");
  CHECK(carol.backend_user == "svc");
  CHECK(carol.backend_password_file == "/run/s");
  CHECK(carol.tls_required == std::optional<std::string>("on"));
}

TEST_CASE("users file errors carry line and column") {
  struct Case {
    std::string text;
    int line;
    int column;
    std::string message;
  };
  const Case cases[] = {
      {"alice\n", 1, 1, "expected name:hash"},
      {"alice:plaintext\n", 1, 7,
       "user 'alice': unsupported password hash (use yescrypt $y$, bcrypt $2b$/$2y$, sha512crypt $6$ or sha256crypt "
       "$5$; DES, MD5, plain text and locked entries are refused)"},
      {"# c\nalice:$1$x$y\n", 2, 7, ""},
      {std::string("a:") + kYescrypt + "\na:" + kYescrypt + "\n", 2, 1, "user 'a' is listed twice (first on line 1)"},
      {std::string("a:") + kYescrypt + ":bad group\n", 1, 0, "user 'a': invalid group name 'bad group'"},
      {std::string("a:") + kYescrypt + "::colour=blue\n", 1, 0,
       "user 'a': unknown option 'colour' (known: backend, backend_user, backend_password_file, tls_required)"},
      {std::string("a:") + kYescrypt + "::backend\n", 1, 0, "user 'a': option 'backend' needs a value (key=value)"},
      {std::string("a:") + kYescrypt + "::backend_password_file=/x\n", 1, 0,
       "user 'a': backend_password_file needs backend_user"},
      {std::string("a:") + kYescrypt + ":g:o=1:extra\n", 1, 1, "user 'a': expected name:hash:groups:options"},
      {std::string(":") + kYescrypt + "\n", 1, 1, "invalid user name"},
      {std::string("a\x01:") + kYescrypt + "\n", 1, 1, "invalid user name"},
  };
  for (const auto& c : cases) {
    INFO(c.text);
    const auto file = parse_users_file(c.text);
    REQUIRE(file.errors.size() == 1);
    CHECK(file.errors[0].line == c.line);
    if (c.column != 0) CHECK(file.errors[0].column == c.column);
    if (!c.message.empty()) CHECK(file.errors[0].message == c.message);
  }
}

TEST_CASE("an overlong line is an error, not a user") {
  const std::string text = "a:" + std::string(ftpsgate::identity::kMaxUsersFileLine, 'x') + "\n";
  const auto file = parse_users_file(text);
  CHECK(file.users.empty());
  REQUIRE(file.errors.size() == 1);
  CHECK(file.errors[0].message.find("longer than") != std::string::npos);
}
