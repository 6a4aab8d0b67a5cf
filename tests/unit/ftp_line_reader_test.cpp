#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "ftp/line_reader.h"

using ftpsgate::ftp::LineEvent;
using ftpsgate::ftp::LineReader;

namespace {

// Drains the reader; kTooLong events appear as "<too long>".
std::vector<std::string> drain(LineReader& reader) {
  std::vector<std::string> out;
  while (auto event = reader.next()) {
    out.push_back(event->kind == LineEvent::Kind::kTooLong ? std::string("<too long>") : event->text);
  }
  return out;
}

void feed_bytewise(LineReader& reader, std::string_view bytes) {
  for (const char ch : bytes) reader.feed(std::string_view(&ch, 1));
}

const std::string kIac = "\xff";
const std::string kIp = "\xf4";
const std::string kDm = "\xf2";
const std::string kWill = "\xfb";
const std::string kDo = "\xfd";

}  // namespace

TEST_CASE("an empty feed yields no line and no pending bytes") {
  LineReader reader(16);
  reader.feed("");
  CHECK_FALSE(reader.next().has_value());
  CHECK(reader.pending_bytes() == 0);
  CHECK_FALSE(reader.has_pending_input());
}

TEST_CASE("a line without terminator is not delivered and counts as pending") {
  LineReader reader(16);
  reader.feed("NOOP");
  CHECK_FALSE(reader.next().has_value());
  CHECK(reader.pending_bytes() == 4);
  CHECK(reader.has_pending_input());
  reader.feed("\r");
  CHECK_FALSE(reader.next().has_value());
  CHECK(reader.pending_bytes() == 5);
}

TEST_CASE("a line longer than max_line yields exactly one kTooLong and is discarded to its LF") {
  LineReader reader(8);
  reader.feed("123456789");  // 9 > 8
  auto event = reader.next();
  REQUIRE(event.has_value());
  CHECK(event->kind == LineEvent::Kind::kTooLong);
  CHECK(event->text.empty());
  CHECK_FALSE(reader.next().has_value());
  // The rest of the same line, across several feeds, is discarded without a second event.
  reader.feed("abcdefghijklmnopqrstuvwxyz");
  reader.feed("\r\nDELE x");  // SECURITY: the tail after the hidden CRLF is a new line...
  CHECK_FALSE(reader.next().has_value());
  reader.feed("\r\n");  // ...which is only delivered once terminated
  CHECK(drain(reader) == std::vector<std::string>{"DELE x"});
}

TEST_CASE("an over-long line hidden in one big chunk does not leak its tail as a command") {
  LineReader reader(8);
  reader.feed("STOR aaaaaaaaaaaaaaaaaaaaDELE x\r\nNOOP\r\n");
  CHECK(drain(reader) == std::vector<std::string>{"<too long>", "NOOP"});
}

TEST_CASE("a line of exactly max_line bytes is accepted, one more byte is too long") {
  LineReader reader(8);
  reader.feed("12345678\r\n");
  reader.feed("123456789\r\n");
  reader.feed("12345678\n");
  CHECK(drain(reader) == std::vector<std::string>{"12345678", "<too long>", "12345678"});
}

TEST_CASE("a CR counts toward the limit when it is not followed by LF") {
  LineReader reader(8);
  reader.feed("12345678\rX\r\n");  // 10 content bytes: the CR is data here
  CHECK(drain(reader) == std::vector<std::string>{"<too long>"});
}

TEST_CASE("an endless line is reported once and the line after it still parses") {
  LineReader reader(64);
  const std::string chunk(4096, 'A');
  for (int i = 0; i < 256; ++i) reader.feed(chunk);  // 1 MiB without LF
  CHECK(drain(reader) == std::vector<std::string>{"<too long>"});
  reader.feed("\nQUIT\r\n");
  CHECK(drain(reader) == std::vector<std::string>{"QUIT"});
}

TEST_CASE("1-byte chunks produce the same lines as one chunk") {
  const std::string stream = "USER bob\r\nPASS secret\nNOOP\r\n" + kIac + kIp + kIac + kDm + "ABOR\r\n";
  LineReader whole(64);
  whole.feed(stream);
  LineReader bytewise(64);
  feed_bytewise(bytewise, stream);
  const std::vector<std::string> expected = {"USER bob", "PASS secret", "NOOP", "ABOR"};
  CHECK(drain(whole) == expected);
  CHECK(drain(bytewise) == expected);
}

TEST_CASE("an over-long line fed 1 byte at a time yields one kTooLong") {
  LineReader reader(4);
  feed_bytewise(reader, "ABCDEFGHIJ\r\nPWD\r\n");
  CHECK(drain(reader) == std::vector<std::string>{"<too long>", "PWD"});
}

TEST_CASE("lines end with CRLF or bare LF and lose their CR") {
  LineReader reader(64);
  reader.feed("NOOP\r\nPWD\nSYST\r\n\r\n");
  CHECK(drain(reader) == std::vector<std::string>{"NOOP", "PWD", "SYST", ""});
}

TEST_CASE("a CR in the middle of a line is kept as data") {
  LineReader reader(64);
  reader.feed("A\rB\r\n");
  CHECK(drain(reader) == std::vector<std::string>{"A\rB"});
}

TEST_CASE("telnet IAC IP IAC DM before ABOR is removed") {
  LineReader reader(64);
  reader.feed(kIac + kIp + kIac + kDm + "ABOR\r\n");
  CHECK(drain(reader) == std::vector<std::string>{"ABOR"});
}

TEST_CASE("telnet IAC IAC is a literal 0xFF byte") {
  LineReader reader(64);
  reader.feed("RETR a" + kIac + kIac + "b\r\n");
  CHECK(drain(reader) == std::vector<std::string>{"RETR a\xff" "b"});
}

TEST_CASE("telnet WILL/WONT/DO/DONT negotiations are dropped with their option byte") {
  LineReader reader(64);
  reader.feed(kIac + kWill + "\x01" + "NO" + kIac + kDo + "\x03" + "OP" + kIac + "\xfc\x18" + kIac +
              "\xfe\x1f" + "\r\n");
  CHECK(drain(reader) == std::vector<std::string>{"NOOP"});
}

TEST_CASE("a telnet negotiation split across feeds is still dropped") {
  LineReader reader(64);
  reader.feed("NO" + kIac);
  reader.feed(kWill);
  reader.feed("\x01");
  reader.feed("OP\r\n");
  CHECK(drain(reader) == std::vector<std::string>{"NOOP"});
}

TEST_CASE("telnet bytes do not count toward max_line") {
  LineReader reader(4);
  reader.feed(kIac + kIp + kIac + kDm + kIac + kIp + "ABOR\r\n");
  CHECK(drain(reader) == std::vector<std::string>{"ABOR"});
}

TEST_CASE("without telnet stripping 0xFF bytes are ordinary data") {
  LineReader reader(64, /*strip_telnet=*/false);
  reader.feed(kIac + kIp + "ABOR\r\n");
  CHECK(drain(reader) == std::vector<std::string>{"\xff\xf4" "ABOR"});
}

TEST_CASE("bytes pipelined after AUTH TLS are seen as pending input") {
  LineReader reader(64);
  reader.feed("AUTH TLS\r\nUSER evil\r\n");
  auto first = reader.next();
  REQUIRE(first.has_value());
  CHECK(first->text == "AUTH TLS");
  CHECK(reader.has_pending_input());  // a complete injected line is waiting

  LineReader partial(64);
  partial.feed("AUTH TLS\r\nUS");
  REQUIRE(partial.next().has_value());
  CHECK(partial.pending_bytes() == 2);
  CHECK(partial.has_pending_input());

  LineReader telnet_only(64);
  telnet_only.feed("AUTH TLS\r\n" + kIac + kWill + "\x01");
  REQUIRE(telnet_only.next().has_value());
  CHECK(telnet_only.pending_bytes() == 3);  // even dropped telnet bytes count

  LineReader clean(64);
  clean.feed("AUTH TLS\r\n");
  REQUIRE(clean.next().has_value());
  CHECK(clean.pending_bytes() == 0);
  CHECK_FALSE(clean.has_pending_input());
}
