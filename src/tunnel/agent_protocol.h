// The line protocol of an inside-out agent link (docs/agent-design.md 1.2), pure: no I/O.
//
//   gateway -> agent   CONNECT <host>:<port> <session> <purpose>\r\n | PING\r\n | ERR <reason>\r\n
//   agent -> gateway   OK\r\n | ERR <reason>\r\n | PONG\r\n
//
// Parsed strictly: upper-case verbs, single spaces, CRLF only (a bare LF is refused), at most
// limits::kAgentMaxRequestLine bytes for CONNECT and kAgentMaxReplyLine for the rest. After
// OK the link carries raw bytes; nothing here frames them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ftpsgate::tunnel {

// A CONNECT target host, canonical: a dotted quad, an IPv6 address in inet_ntop form
// (without brackets), or a DNS name as written.
struct Host {
  enum class Kind { kIpv4, kIpv6, kName };
  Kind kind = Kind::kName;
  std::string text;
  bool operator==(const Host&) const = default;
  // The wire form: IPv6 in brackets.
  std::string to_string() const;
};

// "a.b.c.d" (canonical: no "127.1", hex or leading zeros), "[IPv6]" (no zone id, not
// v4-mapped or v4-compatible) or a DNS name (LDH labels of 1-63 characters, at most 253 in
// all, the last label not numeric). The unspecified addresses (0.0.0.0/8, ::) are refused:
// connecting to them reaches the local host. nullopt with `error` set on refusal.
std::optional<Host> parse_host(std::string_view text, std::string& error);
// 1-65535 in decimal, no leading zeros, no sign.
std::optional<uint16_t> parse_port(std::string_view text);

enum class Purpose { kControl, kData, kHealth };
std::string_view purpose_name(Purpose purpose);

// The fixed reasons of ERR; no free text crosses a link.
enum class ErrReason {
  kNotAllowed,
  kConnectFailed,
  kConnectTimeout,
  kResolveFailed,
  kBadRequest,
  kBusy,
  kShuttingDown,
  kUnknownAgent,
  kTooManyLinks,
};
std::string_view reason_name(ErrReason reason);
std::optional<ErrReason> parse_reason(std::string_view token);

struct ConnectRequest {
  Host host;
  uint16_t port = 0;
  uint64_t session = 0;  // the gateway session; 0 for health checks
  Purpose purpose = Purpose::kControl;
  bool operator==(const ConnectRequest&) const = default;
};

struct Message {
  enum class Kind { kConnect, kOk, kErr, kPing, kPong };
  Kind kind = Kind::kPing;
  ConnectRequest connect;                     // kConnect only
  ErrReason reason = ErrReason::kBadRequest;  // kErr only
  bool operator==(const Message&) const = default;
};

struct ParsedLine {
  std::optional<Message> message;
  std::string error;  // why it was refused; empty when message is set
};

// One whole line, CRLF included (as split_line delimits it).
ParsedLine parse_line(std::string_view line);

// Exactly what parse_line accepts, CRLF included. The request's host must be what
// parse_host returns (else assert); the result is within the line limits.
std::string build_line(const Message& message);
std::string build_connect(const ConnectRequest& request);
std::string build_err(ErrReason reason);
std::string_view ok_line();
std::string_view ping_line();
std::string_view pong_line();

// Finding the first line in the bytes received so far, for a reader with a bounded buffer.
struct LineSplit {
  enum class Status {
    kNeedMore,  // no LF yet and fewer than max_line bytes: read more
    kLine,      // a CRLF-terminated line of `length` bytes (CRLF included) starts the input
    kTooLong,   // no line end within max_line bytes: close the link
    kBareLf,    // the first line ends in LF without CR: close the link
  };
  Status status = Status::kNeedMore;
  std::size_t length = 0;
};
LineSplit split_line(std::string_view received, std::size_t max_line);

}  // namespace ftpsgate::tunnel
