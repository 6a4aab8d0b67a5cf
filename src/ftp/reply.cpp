#include "ftp/reply.h"

#include <cassert>

namespace ftpsgate::ftp {

namespace {

bool is_digit(char ch) { return ch >= '0' && ch <= '9'; }

// The reply code of a first line: 3 digits, 100..599, then end, ' ' or '-'.
std::optional<int> first_line_code(std::string_view line) {
  if (line.size() < 3 || !is_digit(line[0]) || !is_digit(line[1]) || !is_digit(line[2])) {
    return std::nullopt;
  }
  if (line.size() > 3 && line[3] != ' ' && line[3] != '-') return std::nullopt;
  const int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
  if (code < 100 || code > 599) return std::nullopt;
  return code;
}

}  // namespace

std::string Reply::wire() const {
  std::string out;
  std::size_t size = 0;
  for (const auto& line : lines) size += line.size() + 2;
  out.reserve(size);
  for (const auto& line : lines) {
    out += line;
    out += "\r\n";
  }
  return out;
}

std::string_view Reply::text() const {
  if (lines.empty() || lines.front().size() <= 4) return {};
  return std::string_view(lines.front()).substr(4);
}

std::string make_reply(int code, std::string_view text) {
  assert(code >= 100 && code <= 599);
  std::string out = std::to_string(code);
  if (!text.empty()) {
    out.push_back(' ');
    out.append(text);
  }
  // SECURITY: a CR or LF in the text (e.g. an echoed path) would forge extra reply lines.
  for (std::size_t i = 3; i < out.size(); ++i) {
    if (out[i] == '\r' || out[i] == '\n') out[i] = ' ';
  }
  out += "\r\n";
  return out;
}

ReplyAssembler::ReplyAssembler(ReplyLimits limits) : limits_(limits) {}

void ReplyAssembler::reset() {
  current_ = Reply{};
  bytes_ = 0;
  in_multiline_ = false;
  complete_ = false;
}

ReplyAssembler::Status ReplyAssembler::feed_line(std::string_view line) {
  if (complete_) reset();  // previous reply not taken: start afresh

  // SECURITY: a hostile or broken upstream cannot make us buffer an unbounded reply
  // (ProFTPD mod_proxy's ctrl.c TODO); the caller closes the upstream on kTooLarge.
  const std::size_t line_bytes = line.size() + 2;
  if (current_.lines.size() + 1 > limits_.max_lines || line_bytes > limits_.max_bytes ||
      bytes_ > limits_.max_bytes - line_bytes) {
    reset();
    return Status::kTooLarge;
  }

  if (!in_multiline_) {
    const auto code = first_line_code(line);
    if (!code) {
      reset();
      return Status::kMalformed;
    }
    current_.code = *code;
    current_.lines.emplace_back(line);
    bytes_ = line_bytes;
    if (line.size() > 3 && line[3] == '-') {
      in_multiline_ = true;
      return Status::kNeedMore;
    }
    complete_ = true;
    return Status::kComplete;
  }

  current_.lines.emplace_back(line);
  bytes_ += line_bytes;
  // The last line repeats the code followed by a space (or nothing); any other line,
  // even "123-..." or one starting with other digits, is part of the text.
  const std::string_view code_text = std::string_view(current_.lines.front()).substr(0, 3);
  if (line.substr(0, 3) == code_text && (line.size() == 3 || line[3] == ' ')) {
    in_multiline_ = false;
    complete_ = true;
    return Status::kComplete;
  }
  return Status::kNeedMore;
}

Reply ReplyAssembler::take() {
  Reply out = std::move(current_);
  reset();
  return out;
}

}  // namespace ftpsgate::ftp
