// libFuzzer target: the reply assembler incl. multi-line replies, and make_reply
// (src/ftp/reply.h). The input is what a backend sends: lines split at LF, a CR before the
// LF dropped, as the line reader delivers them.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ftp/reply.h"
#include "fuzz_check.h"
#include "fuzz_lines.h"

namespace {

using ftpsgate::ftp::Reply;
using ftpsgate::ftp::ReplyAssembler;
using ftpsgate::ftp::ReplyLimits;
using ftpsgate::fuzz::backend_lines;
using ftpsgate::fuzz::split;

bool is_terminator(std::string_view line, std::string_view code) {
  return line.substr(0, 3) == code && (line.size() == 3 || line[3] == ' ');
}

void check_reply(const Reply& reply, const ReplyLimits& limits) {
  FUZZ_CHECK(reply.code >= 100 && reply.code <= 599);
  FUZZ_CHECK(!reply.lines.empty());
  FUZZ_CHECK(reply.lines.size() <= limits.max_lines);
  std::size_t bytes = 0;
  for (const auto& line : reply.lines) bytes += line.size() + 2;
  FUZZ_CHECK(bytes <= limits.max_bytes);  // SECURITY: the cap holds

  const std::string code = std::to_string(reply.code);
  const std::string& first = reply.lines.front();
  FUZZ_CHECK(first.size() >= 3 && first.compare(0, 3, code) == 0);
  if (reply.lines.size() == 1) {
    FUZZ_CHECK(is_terminator(first, code));
  } else {
    FUZZ_CHECK(first.size() > 3 && first[3] == '-');
    FUZZ_CHECK(is_terminator(reply.lines.back(), code));
    for (std::size_t i = 1; i + 1 < reply.lines.size(); ++i) FUZZ_CHECK(!is_terminator(reply.lines[i], code));
  }
  FUZZ_CHECK(reply.preliminary() == (reply.code < 200));
  FUZZ_CHECK(reply.positive() == (reply.code >= 200 && reply.code < 400));
  if (first.size() > 4) {
    FUZZ_CHECK(reply.text() == std::string_view(first).substr(4));
  } else {
    FUZZ_CHECK(reply.text().empty());
  }

  // What the gateway relays downstream is read back as the same reply.
  const std::string wire = reply.wire();
  FUZZ_CHECK(wire.size() == bytes);
  FUZZ_CHECK(wire.size() >= 2 && wire.compare(wire.size() - 2, 2, "\r\n") == 0);
  const auto lines = split(wire, "\r\n");
  FUZZ_CHECK(lines.size() == reply.lines.size());
  ReplyAssembler again(limits);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const auto status = again.feed_line(lines[i]);
    FUZZ_CHECK(status == (i + 1 == lines.size() ? ReplyAssembler::Status::kComplete
                                                 : ReplyAssembler::Status::kNeedMore));
  }
  const Reply copy = again.take();
  FUZZ_CHECK(copy.code == reply.code && copy.lines == reply.lines);
}

void assemble(const std::vector<std::string_view>& lines, const ReplyLimits& limits) {
  ReplyAssembler assembler(limits);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    switch (assembler.feed_line(lines[i])) {
      case ReplyAssembler::Status::kNeedMore:
        FUZZ_CHECK(assembler.in_reply());
        break;
      case ReplyAssembler::Status::kComplete:
        FUZZ_CHECK(!assembler.in_reply());
        // Now and then leave the reply untaken: the next line must start afresh.
        if (i % 3 != 2) check_reply(assembler.take(), limits);
        break;
      case ReplyAssembler::Status::kMalformed:
      case ReplyAssembler::Status::kTooLarge:
        FUZZ_CHECK(!assembler.in_reply());
        break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::vector<std::string_view> lines = backend_lines(data, size);
  assemble(lines, ReplyLimits{});
  assemble(lines, ReplyLimits{4, 96});  // small caps, so the fuzzer reaches kTooLarge

  // make_reply: one line, CRLF only at the end, whatever the text holds.
  const int code = 100 + static_cast<int>(size % 500);
  const std::string made = ftpsgate::ftp::make_reply(code, input);
  FUZZ_CHECK(made.size() >= 5 && made.find_first_of("\r\n") == made.size() - 2);
  if (made.size() > ReplyLimits{}.max_bytes) return 0;  // only with a raised -max_len
  ReplyAssembler assembler;
  FUZZ_CHECK(assembler.feed_line(std::string_view(made).substr(0, made.size() - 2)) ==
             ReplyAssembler::Status::kComplete);
  const Reply reply = assembler.take();
  FUZZ_CHECK(reply.code == code && reply.lines.size() == 1);
  return 0;
}
