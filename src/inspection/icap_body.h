// What follows an ICAP response head (RFC 3507 §4.4), pure: the Encapsulated header that
// says how long the encapsulated HTTP headers are and whether a chunked body follows, and a
// bounded reader that walks such a body to its last chunk without keeping it, so the
// connection can carry the next request.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ftpsgate::inspection {

struct IcapEncapsulated {
  std::size_t headers_length = 0;  // bytes of encapsulated HTTP headers before the body
  bool has_body = false;           // req-body/res-body/opt-body: a chunked body follows; null-body: none
};

// "req-hdr=0, res-hdr=137, res-body=296": sections in ascending offsets, the last one a body
// (req-body, res-body, opt-body or null-body); nullopt for anything else.
std::optional<IcapEncapsulated> parse_icap_encapsulated(std::string_view value);

// The longest chunk-size line (with extensions such as "; ieof") or trailer line accepted.
inline constexpr std::size_t kIcapMaxChunkLine = 1024;
// All trailer lines after the last chunk together.
inline constexpr std::size_t kIcapMaxTrailer = 16 * 1024;

// Walks a chunked body (RFC 9112 §7.1): size lines, data, the last chunk and its trailer.
// Keeps nothing but the current line (at most kIcapMaxChunkLine bytes).
class IcapBodySkipper {
 public:
  enum class Status { kNeedMore, kDone, kError };
  // Reads what it can of `data`; `used` counts the bytes that belonged to the body (after
  // kDone, the rest of `data` is the next message's). After kDone or kError, reads nothing.
  Status feed(std::string_view data, std::size_t& used);
  uint64_t data_bytes() const { return data_bytes_; }  // chunk data seen so far
  std::string_view error() const { return error_; }

 private:
  enum class State { kSize, kData, kDataEnd, kTrailer, kDone, kError };
  // Adds `data` from `at` up to a line feed to line_ (copying at most one byte over the
  // limit) and moves `at` past it; true when the line is complete (its CR LF dropped).
  bool take_line(std::string_view data, std::size_t& at);
  bool size_line();  // line_ as a chunk-size line, into remaining_
  Status fail(std::string_view why);

  State state_ = State::kSize;
  std::string line_;
  uint64_t remaining_ = 0;  // data bytes left in the current chunk
  uint64_t data_bytes_ = 0;
  std::size_t trailer_bytes_ = 0;
  std::string_view error_;
};

}  // namespace ftpsgate::inspection
