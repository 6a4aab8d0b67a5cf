#include "ftp/line_reader.h"

namespace ftpsgate::ftp {

namespace {

// Telnet command bytes (RFC 854).
constexpr unsigned char kIac = 255;
constexpr unsigned char kWill = 251;
constexpr unsigned char kDont = 254;  // WILL 251, WONT 252, DO 253, DONT 254

enum TelnetState : int {
  kData = 0,       // ordinary bytes
  kAfterIac = 1,   // saw IAC, next byte is a command (or a second IAC)
  kNegotiate = 2,  // saw IAC WILL/WONT/DO/DONT, next byte is the option
};

}  // namespace

LineReader::LineReader(std::size_t max_line, bool strip_telnet)
    : max_line_(max_line), strip_telnet_(strip_telnet) {
  partial_.reserve(max_line_ + 2);
}

void LineReader::feed(std::string_view bytes) {
  for (const char ch : bytes) take(ch);
}

std::size_t LineReader::feed_until_line(std::string_view bytes) {
  const std::size_t before = ready_.size();
  std::size_t used = 0;
  while (used < bytes.size() && ready_.size() == before) take(bytes[used++]);
  return used;
}

void LineReader::take(char ch) {
  const auto byte = static_cast<unsigned char>(ch);
  // Counted before telnet decoding: every byte after the last line end is "pending",
  // whether it is data, a telnet sequence or part of a line being discarded.
  ++raw_pending_;

  if (strip_telnet_) {
    if (telnet_state_ == kAfterIac) {
      if (byte == kIac) {
        telnet_state_ = kData;  // IAC IAC: a literal 0xFF data byte
      } else {
        // WILL/WONT/DO/DONT carry an option byte; every other command (IP, DM, AYT,
        // SB, SE, ...) is a single byte. Either way nothing reaches the line.
        telnet_state_ = (byte >= kWill && byte <= kDont) ? kNegotiate : kData;
        return;
      }
    } else if (telnet_state_ == kNegotiate) {
      telnet_state_ = kData;  // the option byte is dropped with its verb
      return;
    } else if (byte == kIac) {
      telnet_state_ = kAfterIac;
      return;
    }
  }

  if (ch == '\n') {
    end_line();
    return;
  }
  if (discarding_) return;

  partial_.push_back(ch);
  // A trailing CR may still be the first half of CRLF, so it does not count yet.
  const std::size_t content = partial_.size() - (partial_.back() == '\r' ? 1 : 0);
  if (content > max_line_) {
    // SECURITY: memory stays bounded at max_line + 2 bytes per partial line; the
    // over-long line is reported once and the rest of it is dropped up to its LF, so a
    // tail like "...\r\nDELE x" hidden past the limit is never executed.
    ready_.push_back(LineEvent{LineEvent::Kind::kTooLong, {}});
    partial_.clear();
    discarding_ = true;
  }
}

void LineReader::end_line() {
  raw_pending_ = 0;
  if (discarding_) {
    discarding_ = false;  // end of the over-long line already reported
    return;
  }
  if (!partial_.empty() && partial_.back() == '\r') partial_.pop_back();
  // A copy sized to the line: a queued line must not keep the max_line reservation
  // (thousands of pipelined short lines would each hold max_line bytes).
  ready_.push_back(LineEvent{LineEvent::Kind::kLine, partial_});
  partial_.clear();
}

std::optional<LineEvent> LineReader::next() {
  if (ready_.empty()) return std::nullopt;
  LineEvent event = std::move(ready_.front());
  ready_.pop_front();
  return event;
}

std::size_t LineReader::pending_bytes() const { return raw_pending_; }

}  // namespace ftpsgate::ftp
