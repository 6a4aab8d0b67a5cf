#include "inspection/icap_body.h"

#include <charconv>

namespace ftpsgate::inspection {

namespace {

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

bool hex_digit(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

}  // namespace

std::optional<IcapEncapsulated> parse_icap_encapsulated(std::string_view value) {
  IcapEncapsulated out;
  std::size_t previous = 0;
  bool ended = false;  // a body section was seen: nothing may follow it
  bool any = false;
  while (!value.empty()) {
    const std::size_t comma = value.find(',');
    const std::string_view part = trim(value.substr(0, comma));
    value = comma == std::string_view::npos ? std::string_view() : value.substr(comma + 1);
    const std::size_t equals = part.find('=');
    if (ended || equals == std::string_view::npos) return std::nullopt;
    const std::string_view name = trim(part.substr(0, equals));
    const std::string_view number = trim(part.substr(equals + 1));
    std::size_t offset = 0;
    const auto [end, error] = std::from_chars(number.data(), number.data() + number.size(), offset);
    if (error != std::errc() || end != number.data() + number.size() || number.empty() || offset < previous) {
      return std::nullopt;
    }
    if (name == "req-body" || name == "res-body" || name == "opt-body" || name == "null-body") {
      out.headers_length = offset;
      out.has_body = name != "null-body";
      ended = true;
    } else if (name != "req-hdr" && name != "res-hdr") {
      return std::nullopt;
    }
    previous = offset;
    any = true;
  }
  if (!any || !ended) return std::nullopt;
  return out;
}

IcapBodySkipper::Status IcapBodySkipper::fail(std::string_view why) {
  state_ = State::kError;
  error_ = why;
  line_.clear();
  return Status::kError;
}

bool IcapBodySkipper::take_line(std::string_view data, std::size_t& at) {
  const std::size_t feed = data.find('\n', at);
  const std::size_t end = feed == std::string_view::npos ? data.size() : feed;
  // One byte over the limit is enough to know; the rest is not copied.
  const std::size_t room = kIcapMaxChunkLine + 2 - std::min(line_.size(), kIcapMaxChunkLine + 2);
  line_.append(data.substr(at, std::min(end - at, room)));
  at = feed == std::string_view::npos ? data.size() : feed + 1;
  if (feed == std::string_view::npos) return false;
  if (!line_.empty() && line_.back() == '\r') line_.pop_back();
  return true;
}

// "1f40", "1f40; ieof", "0": hex digits, then nothing or extensions after ';'.
bool IcapBodySkipper::size_line() {
  std::size_t digits = 0;
  while (digits < line_.size() && hex_digit(line_[digits])) ++digits;
  if (digits == 0 || digits > 15) return false;  // 15 hex digits: no overflow of uint64_t
  const std::string_view rest = trim(std::string_view(line_).substr(digits));
  if (!rest.empty() && rest.front() != ';') return false;
  remaining_ = 0;
  std::from_chars(line_.data(), line_.data() + digits, remaining_, 16);
  return true;
}

IcapBodySkipper::Status IcapBodySkipper::feed(std::string_view data, std::size_t& used) {
  std::size_t at = 0;
  for (;;) {
    used = at;
    if (state_ == State::kDone) return Status::kDone;
    if (state_ == State::kError) return Status::kError;
    if (at == data.size()) return Status::kNeedMore;
    if (state_ == State::kData) {
      const std::size_t n = static_cast<std::size_t>(std::min<uint64_t>(remaining_, data.size() - at));
      at += n;
      remaining_ -= n;
      data_bytes_ += n;
      if (remaining_ == 0) state_ = State::kDataEnd;
      continue;
    }
    const bool complete = take_line(data, at);
    // An unfinished line may end in the CR its line feed drops: the same limits whether the
    // bytes come at once or one by one.
    const std::size_t slack = complete ? 0 : 1;
    if (line_.size() > kIcapMaxChunkLine + slack) return fail("chunk line too long");
    if (state_ == State::kTrailer && trailer_bytes_ + line_.size() > kIcapMaxTrailer + slack) {
      return fail("trailer too long");
    }
    if (!complete) continue;
    switch (state_) {
      case State::kSize:
        if (!size_line()) return fail("bad chunk size line");
        state_ = remaining_ == 0 ? State::kTrailer : State::kData;
        break;
      case State::kDataEnd:
        if (!line_.empty()) return fail("chunk data longer than its size");
        state_ = State::kSize;
        break;
      case State::kTrailer:
        trailer_bytes_ += line_.size() + 2;
        if (line_.empty()) state_ = State::kDone;
        break;
      default:
        break;
    }
    line_.clear();
  }
}

}  // namespace ftpsgate::inspection
