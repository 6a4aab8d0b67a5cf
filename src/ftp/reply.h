// FTP replies (RFC 959 §4.2), including multi-line "123-" ... "123 " replies.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ftpsgate::ftp {

struct Reply {
  int code = 0;
  std::vector<std::string> lines;  // raw lines without CRLF, first includes "123-" / "123 "

  bool preliminary() const { return code >= 100 && code < 200; }
  bool positive() const { return code >= 200 && code < 400; }
  // The reply on the wire, every line CRLF-terminated.
  std::string wire() const;
  // Text of a single-line reply after "123 ", or of the first line.
  std::string_view text() const;
};

// A one-line reply "CODE text\r\n" ("CODE\r\n" for empty text); CR/LF in text become spaces.
std::string make_reply(int code, std::string_view text);

struct ReplyLimits {
  std::size_t max_lines = 1024;
  std::size_t max_bytes = 256 * 1024;
};

// Assembles replies from lines read off the backend's control connection.
class ReplyAssembler {
 public:
  enum class Status { kNeedMore, kComplete, kMalformed, kTooLarge };

  explicit ReplyAssembler(ReplyLimits limits = {});

  // Feed one line (without its terminator). On kComplete, take() returns the reply.
  // After kComplete, kMalformed or kTooLarge the next line starts a new reply.
  Status feed_line(std::string_view line);
  Reply take();
  // True while a multi-line reply has started and not yet ended.
  bool in_reply() const { return in_multiline_; }

 private:
  void reset();

  ReplyLimits limits_;
  Reply current_;
  std::size_t bytes_ = 0;
  bool in_multiline_ = false;
  bool complete_ = false;  // current_ holds a finished reply not yet taken
};

}  // namespace ftpsgate::ftp
