// Splits a control-channel byte stream into lines: CRLF (or bare LF) terminated,
// telnet IAC sequences removed, capped at max_line bytes.
#pragma once

#include <cstddef>
#include <deque>
#include <optional>
#include <string>
#include <string_view>

namespace ftpsgate::ftp {

struct LineEvent {
  enum class Kind { kLine, kTooLong };
  Kind kind = Kind::kLine;
  std::string text;  // the line without its terminator (empty for kTooLong)
};

class LineReader {
 public:
  explicit LineReader(std::size_t max_line, bool strip_telnet = true);

  // Appends bytes; complete lines become available through next().
  void feed(std::string_view bytes);
  // Appends bytes up to and including the one that makes the next event (a line or a
  // kTooLong report) available, and returns how many it took: a caller that wants only a
  // few parsed lines leaves the rest where it is (back-pressure).
  std::size_t feed_until_line(std::string_view bytes);
  std::optional<LineEvent> next();
  // Events parsed and not yet taken by next().
  std::size_t ready_lines() const { return ready_.size(); }

  // Bytes received since the last line terminator: partial line data, an unfinished
  // telnet sequence, dropped telnet commands, bytes of an over-long line being discarded
  // (e.g. plaintext pipelined after AUTH TLS).
  std::size_t pending_bytes() const;
  bool has_pending_input() const { return pending_bytes() > 0 || !ready_.empty(); }

 private:
  void take(char ch);
  void end_line();

  std::size_t max_line_;
  bool strip_telnet_;
  std::string partial_;
  bool discarding_ = false;  // SECURITY: an over-long line is dropped whole, up to its EOL
  int telnet_state_ = 0;
  std::size_t raw_pending_ = 0;  // raw bytes since the last LF, see pending_bytes()
  std::deque<LineEvent> ready_;
};

}  // namespace ftpsgate::ftp
