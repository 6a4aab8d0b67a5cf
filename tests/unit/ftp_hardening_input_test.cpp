// Input hardening of the pure control-channel parsers: bounded line feeding (back-pressure
// for pipelined commands), telnet escaping of relayed lines, USER name checks.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "ftp/command.h"
#include "ftp/line_reader.h"

using ftpsgate::ftp::is_acceptable_user_name;
using ftpsgate::ftp::LineEvent;
using ftpsgate::ftp::LineReader;
using ftpsgate::ftp::telnet_escape;

TEST_CASE("feed_until_line stops right after the byte that completes a line") {
  LineReader reader(64);
  const std::string input = "NOOP\r\nFEAT\r\nPWD";
  const std::size_t used = reader.feed_until_line(input);
  CHECK(used == 6);
  CHECK(reader.ready_lines() == 1);
  CHECK(reader.has_pending_input());
  auto line = reader.next();
  REQUIRE(line.has_value());
  CHECK(line->text == "NOOP");
  CHECK(reader.ready_lines() == 0);
  CHECK_FALSE(reader.has_pending_input());  // nothing beyond the line was taken
}

TEST_CASE("feed_until_line takes everything when no line completes, and a bare LF ends a line") {
  LineReader reader(64);
  CHECK(reader.feed_until_line("USER an") == 7);
  CHECK(reader.ready_lines() == 0);
  CHECK(reader.pending_bytes() == 7);
  CHECK(reader.feed_until_line("na\nPASS x\n") == 3);
  auto line = reader.next();
  REQUIRE(line.has_value());
  CHECK(line->text == "USER anna");
}

TEST_CASE("feed_until_line reports an over-long line at once and later discards its tail") {
  LineReader reader(8);
  const std::string input = "123456789abc\r\nNOOP\r\n";
  const std::size_t used = reader.feed_until_line(input);
  CHECK(used == 9);  // the ninth byte exceeds max_line
  auto event = reader.next();
  REQUIRE(event.has_value());
  CHECK(event->kind == LineEvent::Kind::kTooLong);
  // The rest of the over-long line is dropped up to its LF, then NOOP follows.
  const std::size_t rest = reader.feed_until_line(std::string_view(input).substr(used));
  CHECK(rest == input.size() - used);
  auto noop = reader.next();
  REQUIRE(noop.has_value());
  CHECK(noop->kind == LineEvent::Kind::kLine);
  CHECK(noop->text == "NOOP");
}

TEST_CASE("feed_until_line: an LF right after IAC is a telnet command, not a line end") {
  LineReader reader(64);
  const std::string input = "NO\xff\nOP\r\nX";
  CHECK(reader.feed_until_line(input) == 8);
  auto line = reader.next();
  REQUIRE(line.has_value());
  CHECK(line->text == "NOOP");
}

TEST_CASE("a queued short line does not keep the reader's max_line reservation") {
  LineReader reader(4096);
  std::string many;
  for (int i = 0; i < 100; ++i) many += "NOOP\r\n";
  reader.feed(many);
  CHECK(reader.ready_lines() == 100);
  auto line = reader.next();
  REQUIRE(line.has_value());
  CHECK(line->text == "NOOP");
  CHECK(line->text.capacity() < 4096);
}

TEST_CASE("telnet_escape doubles every 0xFF and nothing else") {
  CHECK(telnet_escape("") == "");
  CHECK(telnet_escape("CWD dir") == "CWD dir");
  CHECK(telnet_escape("CWD d\xffr") == "CWD d\xff\xffr");
  CHECK(telnet_escape("\xff\xff") == "\xff\xff\xff\xff");
  CHECK(telnet_escape("RETR caf\xc3\xa9") == "RETR caf\xc3\xa9");  // UTF-8 untouched
}

TEST_CASE("USER names with control bytes or 0xFF are not acceptable") {
  CHECK(is_acceptable_user_name("ftpuser"));
  CHECK(is_acceptable_user_name("john.doe@example.com"));
  CHECK(is_acceptable_user_name("j\xc3\xb6rg"));  // UTF-8
  CHECK(is_acceptable_user_name("john smith"));
  CHECK_FALSE(is_acceptable_user_name("ftp\xff\xf4user"));  // decoded IAC IAC, then IP
  CHECK_FALSE(is_acceptable_user_name("ftp\xffuser"));
  CHECK_FALSE(is_acceptable_user_name(std::string("ftp\0user", 8)));
  CHECK_FALSE(is_acceptable_user_name("ftp\tuser"));
  CHECK_FALSE(is_acceptable_user_name("ftp\x1buser"));
  CHECK_FALSE(is_acceptable_user_name("ftp\x7fuser"));
  CHECK_FALSE(is_acceptable_user_name("ftpuser\r"));
}
