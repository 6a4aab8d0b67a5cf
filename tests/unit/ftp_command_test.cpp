#include <doctest/doctest.h>

#include <string>

#include "ftp/command.h"

using ftpsgate::ftp::Command;
using ftpsgate::ftp::parse_command;
using ftpsgate::ftp::redact_for_log;

TEST_CASE("command lines that are not VERB[ SP argument] are rejected") {
  CHECK_FALSE(parse_command("").has_value());
  CHECK_FALSE(parse_command(" ").has_value());
  CHECK_FALSE(parse_command(" USER bob").has_value());  // leading space
  CHECK_FALSE(parse_command("US").has_value());         // verb too short
  CHECK_FALSE(parse_command("US bob").has_value());
  CHECK_FALSE(parse_command("ABCDEFGHI").has_value());  // 9 letters
  CHECK_FALSE(parse_command("ABCDEFGHI x").has_value());
  CHECK_FALSE(parse_command("AB1").has_value());  // non-letter in the verb
  CHECK_FALSE(parse_command("USER1 bob").has_value());
  CHECK_FALSE(parse_command("USER\tbob").has_value());  // tab is not the separator
  CHECK_FALSE(parse_command("USER:bob").has_value());
  CHECK_FALSE(parse_command("123 hello").has_value());
  CHECK_FALSE(parse_command("\xc3\x9cSER bob").has_value());  // non-ASCII letter
}

TEST_CASE("CR, LF or NUL inside an argument are rejected (command smuggling)") {
  CHECK_FALSE(parse_command("NOOP x\rDELE y").has_value());
  CHECK_FALSE(parse_command("NOOP x\nDELE y").has_value());
  CHECK_FALSE(parse_command(std::string("USER a\0b", 8)).has_value());
}

TEST_CASE("the verb is upper-cased and the argument kept verbatim") {
  auto cmd = parse_command("retr My File.txt ");
  REQUIRE(cmd.has_value());
  CHECK(cmd->verb == "RETR");
  CHECK(cmd->argument == "My File.txt ");

  cmd = parse_command("USER  bob");  // one separator, the second space is the argument's
  REQUIRE(cmd.has_value());
  CHECK(cmd->argument == " bob");
}

TEST_CASE("verbs of 3 and 8 letters and verbs without argument are accepted") {
  auto pwd = parse_command("PWD");
  REQUIRE(pwd.has_value());
  CHECK(pwd->verb == "PWD");
  CHECK(pwd->argument.empty());

  auto eight = parse_command("abcdefgh x");
  REQUIRE(eight.has_value());
  CHECK(eight->verb == "ABCDEFGH");
  CHECK(eight->argument == "x");

  auto auth = parse_command("AUTH TLS");
  REQUIRE(auth.has_value());
  CHECK(auth->verb == "AUTH");
  CHECK(auth->argument == "TLS");
}

TEST_CASE("trailing spaces after a verb without argument are tolerated") {
  auto cmd = parse_command("NOOP   ");
  REQUIRE(cmd.has_value());
  CHECK(cmd->verb == "NOOP");
  CHECK(cmd->argument.empty());
}

TEST_CASE("PASS and ACCT are redacted in logs, other commands are not") {
  CHECK(redact_for_log(Command{"PASS", "hunter2"}) == "PASS ****");
  CHECK(redact_for_log(Command{"PASS", ""}) == "PASS ****");
  CHECK(redact_for_log(Command{"ACCT", "secret account"}) == "ACCT ****");
  CHECK(redact_for_log(Command{"USER", "bob"}) == "USER bob");
  CHECK(redact_for_log(Command{"NOOP", ""}) == "NOOP");
  auto parsed = parse_command("pass s3cret word");
  REQUIRE(parsed.has_value());
  const std::string logged = redact_for_log(*parsed);
  CHECK(logged == "PASS ****");
  CHECK(logged.find("s3cret") == std::string::npos);
}
