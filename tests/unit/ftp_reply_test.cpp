#include <doctest/doctest.h>

#include <string>

#include "ftp/reply.h"

using ftpsgate::ftp::make_reply;
using ftpsgate::ftp::Reply;
using ftpsgate::ftp::ReplyAssembler;
using ftpsgate::ftp::ReplyLimits;
using Status = ftpsgate::ftp::ReplyAssembler::Status;

TEST_CASE("reply lines without a 3-digit code 100..599 are malformed") {
  ReplyAssembler assembler;
  CHECK(assembler.feed_line("") == Status::kMalformed);
  CHECK(assembler.feed_line("hello") == Status::kMalformed);
  CHECK(assembler.feed_line("22") == Status::kMalformed);
  CHECK(assembler.feed_line("22 x") == Status::kMalformed);
  CHECK(assembler.feed_line("2200 x") == Status::kMalformed);
  CHECK(assembler.feed_line("220x") == Status::kMalformed);
  CHECK(assembler.feed_line("099 too low") == Status::kMalformed);
  CHECK(assembler.feed_line("600 too high") == Status::kMalformed);
  CHECK(assembler.feed_line(" 220 leading space") == Status::kMalformed);
  CHECK(assembler.feed_line("+20 sign") == Status::kMalformed);
  // Still usable afterwards.
  CHECK(assembler.feed_line("200 ok") == Status::kComplete);
  CHECK(assembler.take().code == 200);
}

TEST_CASE("a multi-line reply without its last line is never complete") {
  ReplyAssembler assembler;
  CHECK(assembler.feed_line("211-Features:") == Status::kNeedMore);
  CHECK(assembler.feed_line(" UTF8") == Status::kNeedMore);
  CHECK(assembler.feed_line("211-still not the end") == Status::kNeedMore);
  CHECK(assembler.feed_line("2110 not the end either") == Status::kNeedMore);
  CHECK(assembler.feed_line("212 another code") == Status::kNeedMore);
  CHECK(assembler.in_reply());
}

TEST_CASE("a reply with too many lines is kTooLarge and the assembler starts over") {
  ReplyAssembler assembler(ReplyLimits{4, 1024});
  CHECK(assembler.feed_line("211-a") == Status::kNeedMore);
  CHECK(assembler.feed_line(" b") == Status::kNeedMore);
  CHECK(assembler.feed_line(" c") == Status::kNeedMore);
  CHECK(assembler.feed_line(" d") == Status::kNeedMore);
  CHECK(assembler.feed_line(" e") == Status::kTooLarge);
  CHECK_FALSE(assembler.in_reply());
  CHECK(assembler.feed_line("200 next") == Status::kComplete);
  CHECK(assembler.take().lines == std::vector<std::string>{"200 next"});
}

TEST_CASE("a reply with too many bytes is kTooLarge, even a single line") {
  ReplyAssembler assembler(ReplyLimits{1024, 32});
  CHECK(assembler.feed_line("200 " + std::string(27, 'x')) == Status::kTooLarge);  // 33 with CRLF
  CHECK(assembler.feed_line("200 " + std::string(26, 'x')) == Status::kComplete);  // exactly 32

  CHECK(assembler.feed_line("211-0123456789") == Status::kNeedMore);  // 16 bytes with CRLF
  CHECK(assembler.feed_line(" 0123456789abcd") == Status::kTooLarge);  // +17 = 33 > 32
  CHECK(assembler.feed_line("220 ok") == Status::kComplete);
}

TEST_CASE("a huge multi-line reply from a hostile upstream stops at the default limit") {
  ReplyAssembler assembler;
  CHECK(assembler.feed_line("150-start") == Status::kNeedMore);
  Status status = Status::kNeedMore;
  std::size_t fed = 1;
  while (status == Status::kNeedMore && fed < 100000) {
    status = assembler.feed_line(" filler line that never ends the reply");
    ++fed;
  }
  CHECK(status == Status::kTooLarge);
  CHECK(fed <= ReplyLimits{}.max_lines + 1);
}

TEST_CASE("single-line replies, with or without text") {
  ReplyAssembler assembler;
  CHECK(assembler.feed_line("220 Service ready") == Status::kComplete);
  Reply reply = assembler.take();
  CHECK(reply.code == 220);
  CHECK(reply.text() == "Service ready");
  CHECK(reply.positive());
  CHECK_FALSE(reply.preliminary());
  CHECK(reply.wire() == "220 Service ready\r\n");

  CHECK(assembler.feed_line("150") == Status::kComplete);
  reply = assembler.take();
  CHECK(reply.code == 150);
  CHECK(reply.preliminary());
  CHECK(reply.text().empty());
  CHECK(reply.wire() == "150\r\n");

  CHECK(assembler.feed_line("530 Not logged in") == Status::kComplete);
  reply = assembler.take();
  CHECK_FALSE(reply.positive());
}

TEST_CASE("a multi-line reply is kept intact, inner lines may start with digits") {
  ReplyAssembler assembler;
  CHECK(assembler.feed_line("230-Welcome") == Status::kNeedMore);
  CHECK(assembler.feed_line("123 looks like a reply but is text") == Status::kNeedMore);
  CHECK(assembler.feed_line("230-more") == Status::kNeedMore);
  CHECK(assembler.feed_line("") == Status::kNeedMore);
  CHECK(assembler.feed_line("230 Logged in") == Status::kComplete);
  const Reply reply = assembler.take();
  CHECK(reply.code == 230);
  CHECK(reply.lines.size() == 5);
  CHECK(reply.text() == "Welcome");
  CHECK(reply.wire() ==
        "230-Welcome\r\n123 looks like a reply but is text\r\n230-more\r\n\r\n230 Logged in\r\n");
}

TEST_CASE("a multi-line reply may end with the bare code") {
  ReplyAssembler assembler;
  CHECK(assembler.feed_line("211-Features:") == Status::kNeedMore);
  CHECK(assembler.feed_line(" MDTM") == Status::kNeedMore);
  CHECK(assembler.feed_line("211") == Status::kComplete);
  CHECK(assembler.take().lines.size() == 3);
}

TEST_CASE("a completed reply not taken is replaced by the next one") {
  ReplyAssembler assembler;
  CHECK(assembler.feed_line("200 first") == Status::kComplete);
  CHECK(assembler.feed_line("201 second") == Status::kComplete);
  const Reply reply = assembler.take();
  CHECK(reply.code == 201);
  CHECK(reply.lines.size() == 1);
}

TEST_CASE("make_reply builds one CRLF-terminated line and neutralises CR/LF in the text") {
  CHECK(make_reply(200, "PBSZ=0") == "200 PBSZ=0\r\n");
  CHECK(make_reply(421, "Service not available, backend unreachable") ==
        "421 Service not available, backend unreachable\r\n");
  CHECK(make_reply(226, "") == "226\r\n");
  CHECK(make_reply(550, "bad\r\n230 fake") == "550 bad  230 fake\r\n");
}
