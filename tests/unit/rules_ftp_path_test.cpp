#include <doctest/doctest.h>

#include <string>
#include <variant>

#include "rules/ftp_path.h"

using ftpsgate::rules::PathError;
using ftpsgate::rules::resolve_path;

namespace {

std::string ok(std::string_view cwd, std::string_view argument) {
  auto result = resolve_path(cwd, argument);
  INFO(cwd << " + " << argument);
  REQUIRE(std::holds_alternative<std::string>(result));
  return std::get<std::string>(result);
}

PathError error(std::string_view cwd, std::string_view argument) {
  auto result = resolve_path(cwd, argument);
  INFO(cwd << " + " << argument);
  REQUIRE(std::holds_alternative<PathError>(result));
  return std::get<PathError>(result);
}

}  // namespace

TEST_CASE("paths resolve against the working directory and normalise") {
  CHECK(ok("/pub", "file.txt") == "/pub/file.txt");
  CHECK(ok("/pub", "") == "/pub");
  CHECK(ok("/pub", ".") == "/pub");
  CHECK(ok("/pub", "./a/./b/") == "/pub/a/b");
  CHECK(ok("/pub", "a//b///c") == "/pub/a/b/c");
  CHECK(ok("/pub", "/etc/passwd") == "/etc/passwd");
  CHECK(ok("/pub/in", "..") == "/pub");
  CHECK(ok("/", "..") == "/");
  CHECK(ok("/", "/") == "/");
  CHECK(error("/pub", "%41") == PathError::kEncoded);  // any %XX, not only dots
}

TEST_CASE("traversal spellings resolve to where they really point") {
  // Each lands outside /pub: a rule on /pub/** sees the real target.
  const char* escapes[] = {
      "../../etc/passwd", "../etc/passwd",  "/pub/../etc/passwd", "a/../../etc/passwd",   "./../etc/passwd",
      "..//..//etc/passwd", "a/b/../../../etc/passwd", "/pub/./../etc/passwd", "//etc/passwd", "/../etc/passwd",
      "a/./../../etc/passwd", ".././../etc/passwd", "a/b/c/../../../../etc/passwd", "/pub/a/../../etc/passwd",
  };
  for (const char* escape : escapes) CHECK(ok("/pub", escape) == "/etc/passwd");
  CHECK(ok("/pub", "/allowed/../secret") == "/secret");
  CHECK(ok("/pub", "...") == "/pub/...");  // three dots are a name
}

TEST_CASE("what the gateway cannot resolve is an error") {
  CHECK(error("/pub", std::string("a\0b", 3)) == PathError::kNul);
  CHECK(error("/pub", "a\tb") == PathError::kControl);
  CHECK(error("/pub", "a\x7f") == PathError::kControl);
  CHECK(error("/pub", "..\\..\\etc\\passwd") == PathError::kBackslash);
  CHECK(error("/pub", "%2e%2e/%2e%2e/etc/passwd") == PathError::kEncoded);
  CHECK(error("/pub", "%2E%2E%2Fsecret") == PathError::kEncoded);
  CHECK(error("/pub", "..%2fsecret") == PathError::kEncoded);
  CHECK(error("/pub", "..%5csecret") == PathError::kEncoded);
  CHECK(error("/pub", "a%00.txt") == PathError::kEncoded);
  CHECK(error("/pub", "~root/.ssh") == PathError::kTilde);
  CHECK(error("/pub", "~") == PathError::kTilde);
  CHECK(error("", "relative") == PathError::kRelativeUnknown);
  CHECK(error("/", std::string(5000, 'a')) == PathError::kTooLong);
  CHECK(ok("", "/absolute") == "/absolute");  // no working directory needed
  CHECK(ok("/pub", "100%.txt") == "/pub/100%.txt");  // a lone % is a character
}
