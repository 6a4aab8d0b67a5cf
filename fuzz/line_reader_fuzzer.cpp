// libFuzzer target: the control-channel line reader (src/ftp/line_reader.h).
//
// The input is a raw byte stream. Each run feeds it to readers with several line limits,
// with and without telnet stripping, both at once and in data-dependent chunks, and
// compares every event and pending_bytes() with a small reference model written from the
// header's contract (RFC 854 telnet commands dropped, CRLF or LF ends a line, a line over
// the limit is reported once as kTooLong and dropped up to its LF).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ftp/line_reader.h"
#include "fuzz_check.h"

namespace {

using ftpsgate::ftp::LineEvent;
using ftpsgate::ftp::LineReader;

struct Model {
  std::vector<LineEvent> events;
  std::size_t pending = 0;  // raw bytes after the last LF that ended a line
};

// The bytes that reach the line logic, and for each the raw offset it came from.
struct Decoded {
  std::string bytes;
  std::vector<std::size_t> offsets;
};

Decoded telnet_decode(std::string_view raw, bool strip) {
  Decoded out;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    const auto byte = static_cast<unsigned char>(raw[i]);
    if (strip && byte == 255) {
      if (i + 1 >= raw.size()) break;  // unfinished: IAC at the end
      const auto command = static_cast<unsigned char>(raw[i + 1]);
      if (command == 255) {  // IAC IAC: a data byte 0xFF
        out.bytes.push_back(raw[i + 1]);
        out.offsets.push_back(i + 1);
        ++i;
      } else if (command >= 251 && command <= 254) {  // WILL/WONT/DO/DONT <option>
        i += 2;
      } else {  // any other command is one byte
        ++i;
      }
      continue;
    }
    out.bytes.push_back(raw[i]);
    out.offsets.push_back(i);
  }
  return out;
}

Model model(std::string_view raw, std::size_t max_line, bool strip) {
  const Decoded decoded = telnet_decode(raw, strip);
  const std::string_view bytes = decoded.bytes;
  Model out;
  std::size_t start = 0;
  std::size_t last_lf_raw = 0;  // raw offset just past the last line-ending LF
  while (true) {
    const std::size_t lf = bytes.find('\n', start);
    std::string_view segment = bytes.substr(start, lf == std::string_view::npos ? std::string_view::npos : lf - start);
    // A CR just before the LF (or still waiting for one) does not count against the limit.
    if (!segment.empty() && segment.back() == '\r') segment.remove_suffix(1);
    if (segment.size() > max_line) {
      out.events.push_back(LineEvent{LineEvent::Kind::kTooLong, {}});
    } else if (lf != std::string_view::npos) {
      out.events.push_back(LineEvent{LineEvent::Kind::kLine, std::string(segment)});
    }
    if (lf == std::string_view::npos) break;
    last_lf_raw = decoded.offsets[lf] + 1;
    start = lf + 1;
  }
  out.pending = raw.size() - last_lf_raw;
  return out;
}

void drain(LineReader& reader, std::vector<LineEvent>& out) {
  while (auto event = reader.next()) out.push_back(std::move(*event));
}

bool same(const std::vector<LineEvent>& a, const std::vector<LineEvent>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].kind != b[i].kind || a[i].text != b[i].text) return false;
  }
  return true;
}

void check(std::string_view raw, std::size_t max_line, bool strip) {
  const Model expected = model(raw, max_line, strip);

  // All bytes at once.
  LineReader whole(max_line, strip);
  whole.feed(raw);
  FUZZ_CHECK(whole.pending_bytes() == expected.pending);
  std::vector<LineEvent> whole_events;
  drain(whole, whole_events);
  FUZZ_CHECK(whole.pending_bytes() == expected.pending);
  FUZZ_CHECK(whole.has_pending_input() == (expected.pending > 0));

  // In chunks cut where the data says (so the fuzzer controls the cuts), draining as we go.
  LineReader chunked(max_line, strip);
  std::vector<LineEvent> chunked_events;
  std::size_t start = 0;
  std::size_t fed = 0;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    const auto byte = static_cast<unsigned char>(raw[i]);
    if (i + 1 == raw.size() || (byte * 7u + i) % 5u == 0) {
      chunked.feed(raw.substr(start, i + 1 - start));
      fed = i + 1;
      start = i + 1;
      FUZZ_CHECK(chunked.pending_bytes() <= fed);
      drain(chunked, chunked_events);
    }
  }
  FUZZ_CHECK(chunked.pending_bytes() == expected.pending);

  for (const auto& event : whole_events) {
    if (event.kind == LineEvent::Kind::kLine) {
      FUZZ_CHECK(event.text.size() <= max_line);  // the cap holds for every line
      FUZZ_CHECK(event.text.find('\n') == std::string::npos);
    } else {
      FUZZ_CHECK(event.text.empty());
    }
  }
  FUZZ_CHECK(same(whole_events, expected.events));
  FUZZ_CHECK(same(chunked_events, expected.events));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view raw(reinterpret_cast<const char*>(data), size);
  for (const std::size_t max_line : {std::size_t{1}, std::size_t{8}, std::size_t{64}, std::size_t{512}}) {
    check(raw, max_line, /*strip=*/true);
    check(raw, max_line, /*strip=*/false);
  }
  return 0;
}
