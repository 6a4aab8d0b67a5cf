#include <doctest/doctest.h>

#include <string>

#include "rules/glob.h"

using ftpsgate::rules::Glob;

namespace {

bool match(std::string_view pattern, std::string_view path) {
  auto glob = Glob::compile(pattern);
  REQUIRE(glob.has_value());
  return glob->matches(path);
}

}  // namespace

TEST_CASE("star and question mark stay within one part") {
  CHECK(match("/pub/*.txt", "/pub/a.txt"));
  CHECK(match("/pub/*.txt", "/pub/.txt"));
  CHECK_FALSE(match("/pub/*.txt", "/pub/sub/a.txt"));
  CHECK(match("/pub/?.txt", "/pub/a.txt"));
  CHECK_FALSE(match("/pub/?.txt", "/pub/ab.txt"));
  CHECK_FALSE(match("/a?b", "/a/b"));
  CHECK(match("*.exe", "setup.exe"));
  CHECK_FALSE(match("*.exe", "setup.exe.txt"));
}

TEST_CASE("globstar crosses parts; /**/ and a trailing /** include the directory itself") {
  CHECK(match("/pub/**", "/pub"));
  CHECK(match("/pub/**", "/pub/"));
  CHECK(match("/pub/**", "/pub/a/b/c"));
  CHECK_FALSE(match("/pub/**", "/public"));
  CHECK_FALSE(match("/pub/**", "/pubx/a"));
  CHECK(match("/a/**/b", "/a/b"));
  CHECK(match("/a/**/b", "/a/x/y/b"));
  CHECK_FALSE(match("/a/**/b", "/a/xb"));
  CHECK(match("/**/*.exe", "/x/y/z.exe"));
  CHECK(match("/**/*.exe", "/z.exe"));
  CHECK(match("**", "/anything/at/all"));
  CHECK(match("/a**z", "/a/b/z"));
}

TEST_CASE("classes, negation and escapes") {
  CHECK(match("/f[0-9].txt", "/f7.txt"));
  CHECK_FALSE(match("/f[0-9].txt", "/fx.txt"));
  CHECK(match("/f[!0-9].txt", "/fx.txt"));
  CHECK_FALSE(match("/f[!0-9].txt", "/f1.txt"));
  CHECK_FALSE(match("/f[!0-9]", "/f/"));  // a class never matches '/'
  CHECK(match("/[]]", "/]"));
  CHECK(match("/a\\*b", "/a*b"));
  CHECK_FALSE(match("/a\\*b", "/axb"));
}

TEST_CASE("bad patterns are refused with a reason") {
  std::string error;
  CHECK_FALSE(Glob::compile("", &error));
  CHECK(error == "empty pattern");
  CHECK_FALSE(Glob::compile("/a[bc", &error));
  CHECK(error == "unclosed '['");
  CHECK_FALSE(Glob::compile("/a\\", &error));
  CHECK(error == "trailing backslash");
  CHECK_FALSE(Glob::compile(std::string(2000, 'a'), &error));
  CHECK(error == "pattern too long");
}

TEST_CASE("no exponential blow-up on hostile patterns") {
  const auto glob = Glob::compile("/**a**a**a**a**a**a**a**a**a**a**b");
  REQUIRE(glob);
  CHECK_FALSE(glob->matches("/" + std::string(4000, 'a')));
}
